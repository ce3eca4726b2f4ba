//! Pages for people, served by `touchline run`: a CSM's inbox (`/inbox`), an account's
//! story (`/accounts/{id}`) and the task actions behind their forms. Server-rendered with
//! minijinja, as mails are; no JavaScript needed; readable on a phone.
//!
//! A CSM signs in through the link in their notice mails (`/signin?token=…`), which sets a
//! signed session cookie; the API token (`Authorization: Bearer`) sees every CSM's tasks.
//! Every form carries a token bound to the session, so another site cannot post one.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::delivery::signin::{self, COOKIE, PageKeys, SESSION_DAYS};
use crate::http_state::ApiState;
use crate::store::Store;
use crate::task_desk::{self, DeskError};
use crate::views::inbox::{self, InboxFilter, Viewer};

/// The pages' routes.
pub fn router<S: Store>() -> Router<Arc<ApiState<S>>> {
    Router::new()
        .route("/signin", get(sign_in::<S>))
        .route("/signout", post(sign_out))
        .route("/inbox", get(inbox_page::<S>))
        .route("/accounts/{id}", get(account_page::<S>))
        .route("/tasks/{id}/{action}", post(task_action::<S>))
}

/// The page templates, compiled once.
fn templates() -> &'static minijinja::Environment<'static> {
    static TEMPLATES: std::sync::OnceLock<minijinja::Environment<'static>> =
        std::sync::OnceLock::new();
    TEMPLATES.get_or_init(|| {
        let mut env = minijinja::Environment::new();
        for (name, source) in [
            ("layout.html", include_str!("templates/layout.html")),
            ("message.html", include_str!("templates/message.html")),
            ("inbox.html", include_str!("templates/inbox.html")),
            ("account.html", include_str!("templates/account.html")),
        ] {
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("page template {name} does not compile: {e}"));
        }
        env
    })
}

fn render(status: StatusCode, template: &str, context: minijinja::Value) -> Response {
    match templates()
        .get_template(template)
        .and_then(|page| page.render(context))
    {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!("cannot render {template}: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered",
            )
                .into_response()
        }
    }
}

/// A page that says one thing: why a request was refused, or what to do.
fn message(status: StatusCode, heading: &str, text: &str) -> Response {
    render(
        status,
        "message.html",
        minijinja::context! { heading, message => text },
    )
}

fn unavailable(e: impl std::fmt::Display) -> Response {
    tracing::error!("page request failed: {e}");
    message(
        StatusCode::SERVICE_UNAVAILABLE,
        "Try again in a moment",
        "The database is unavailable.",
    )
}

/// The page for a visitor who is not signed in (401).
fn please_sign_in(reason: &str) -> Response {
    message(
        StatusCode::UNAUTHORIZED,
        "Sign in",
        &format!(
            "{reason} Follow the link in one of your touchline notice mails, or ask for one: touchline csm link YOUR-ID."
        ),
    )
}

/// Who is asking, with their session cookie's value (for form tokens).
struct Visitor {
    viewer: Viewer,
    session: String,
}

fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

impl<S: Store> ApiState<S> {
    fn unix_now(&self) -> i64 {
        self.clock.now().timestamp()
    }

    /// The visitor: a CSM with a current session, or the API token's holder.
    fn visitor(&self, headers: &HeaderMap) -> Result<Visitor, &'static str> {
        if crate::http_state::authorized(headers, &self.token) {
            return Ok(Visitor {
                viewer: Viewer::Admin,
                session: "admin".into(),
            });
        }
        let Some(session) = cookie(headers, COOKIE) else {
            return Err("You are not signed in.");
        };
        match self.pages.check_session(session, self.unix_now()) {
            Ok(csm) if self.config.csm(&csm).is_some() => Ok(Visitor {
                viewer: Viewer::Csm(csm),
                session: session.to_string(),
            }),
            Ok(_) => Err("Your CSM id is no longer in touchline.yaml."),
            Err(_) => Err("Your session has expired."),
        }
    }

    fn viewer_name(&self, viewer: &Viewer) -> String {
        match viewer {
            Viewer::Csm(id) => self
                .config
                .csm(id)
                .map_or_else(|| id.clone(), |c| c.name.clone()),
            Viewer::Admin => "admin".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
struct SignInQuery {
    token: Option<String>,
}

/// `GET /signin?token=…`: checks the link, sets the session cookie, goes to the inbox.
async fn sign_in<S: Store>(
    State(state): State<Arc<ApiState<S>>>,
    Query(query): Query<SignInQuery>,
) -> Response {
    let keys = &state.pages;
    let now = state.unix_now();
    let Some(token) = query.token else {
        return message(
            StatusCode::BAD_REQUEST,
            "Sign in",
            "This address needs the token from a sign-in link.",
        );
    };
    let csm = match keys.check_link(&token, now) {
        Ok(csm) => csm,
        Err(e) => {
            let status = match e {
                signin::SignInError::Expired => StatusCode::GONE,
                signin::SignInError::Forged => StatusCode::FORBIDDEN,
            };
            return message(status, "This link does not sign you in", &e.to_string());
        }
    };
    if state.config.csm(&csm).is_none() {
        return message(
            StatusCode::FORBIDDEN,
            "This link does not sign you in",
            "It was made for a CSM who is no longer in touchline.yaml.",
        );
    }
    let expires = now + SESSION_DAYS * 86_400;
    let secure = state
        .config
        .http
        .public_url
        .as_deref()
        .is_some_and(|url| url.starts_with("https://"));
    let cookie = format!(
        "{COOKIE}={}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{}",
        keys.session(&csm, expires),
        SESSION_DAYS * 86_400,
        if secure { "; Secure" } else { "" }
    );
    let mut response = Redirect::to("/inbox").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// `POST /signout`: forgets the session.
async fn sign_out() -> Response {
    let mut response = message(StatusCode::OK, "Signed out", "You are signed out.");
    let expired = format!("{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax");
    if let Ok(value) = HeaderValue::from_str(&expired) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// The inbox's filters, and what the last action did (from the redirect; shown escaped).
#[derive(Debug, Default, Deserialize)]
struct InboxQuery {
    #[serde(flatten)]
    filter: InboxFilter,
    /// What the last action did: `done:` or `problem:` and a sentence, signed.
    #[serde(default)]
    said: Option<String>,
}

/// `GET /inbox`.
async fn inbox_page<S: Store>(
    State(state): State<Arc<ApiState<S>>>,
    headers: HeaderMap,
    query: Result<Query<InboxQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let visitor = match state.visitor(&headers) {
        Ok(visitor) => visitor,
        Err(reason) => return please_sign_in(reason),
    };
    let Ok(Query(mut query)) = query else {
        return message(
            StatusCode::BAD_REQUEST,
            "Unknown filter",
            "Filter by journey, priority, overdue, pool or snoozed.",
        );
    };
    // Empty select values mean "any".
    query.filter.journey = query.filter.journey.filter(|j| !j.is_empty());
    query.filter.priority = query.filter.priority.filter(|p| !p.is_empty());
    let said = query
        .said
        .as_deref()
        .and_then(|token| state.pages.check_message(token));
    let definitions = state.definitions();
    let now = state.clock.now();
    let view = match inbox::build(
        &state.store,
        &definitions,
        &visitor.viewer,
        query.filter,
        now,
    )
    .await
    {
        Ok(view) => view,
        Err(e) => return unavailable(e),
    };
    render(
        StatusCode::OK,
        "inbox.html",
        minijinja::context! {
            inbox => view,
            viewer_name => state.viewer_name(&visitor.viewer),
            csrf => state.pages.form_token(&visitor.session),
            flash => said.as_deref().and_then(|s| s.strip_prefix("done:")),
            problem => said.as_deref().and_then(|s| s.strip_prefix("problem:")),
        },
    )
}

/// `GET /accounts/{id}`: the account's story, for a CSM with a task on it or who owns it.
async fn account_page<S: Store>(
    State(state): State<Arc<ApiState<S>>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let visitor = match state.visitor(&headers) {
        Ok(visitor) => visitor,
        Err(reason) => return please_sign_in(reason),
    };
    let definitions = state.definitions();
    let story = match crate::views::account_story::build(
        &state.store,
        &definitions,
        &id,
        state.clock.now(),
    )
    .await
    {
        Ok(Some(story)) => story,
        Ok(None) => {
            return message(
                StatusCode::NOT_FOUND,
                "No such account",
                &format!("There is no account `{id}`."),
            );
        }
        Err(e) => return unavailable(e),
    };
    if let Some(reach) = visitor.viewer.reach(&definitions) {
        let owns = story
            .account
            .owner
            .as_ref()
            .is_some_and(|o| reach.contains(o));
        let works_on = story
            .tasks
            .iter()
            .any(|t| t.assignee.as_ref().is_some_and(|a| reach.contains(a)));
        if !owns && !works_on {
            return message(
                StatusCode::FORBIDDEN,
                "Not your account",
                "Neither you nor your pools own this account or have a task on it.",
            );
        }
    }
    render(
        StatusCode::OK,
        "account.html",
        minijinja::context! { story, viewer_name => state.viewer_name(&visitor.viewer) },
    )
}

/// The fields of a task form.
#[derive(Debug, Deserialize)]
struct TaskForm {
    csrf: Option<String>,
    note: Option<String>,
    until: Option<String>,
    csm: Option<String>,
}

/// `POST /tasks/{id}/{done|snooze|reassign}`: the action, then back to the inbox with what
/// happened.
async fn task_action<S: Store>(
    State(state): State<Arc<ApiState<S>>>,
    headers: HeaderMap,
    Path((id, action)): Path<(i64, String)>,
    Form(form): Form<TaskForm>,
) -> Response {
    let visitor = match state.visitor(&headers) {
        Ok(visitor) => visitor,
        Err(reason) => return please_sign_in(reason),
    };
    let keys = &state.pages;
    let token_ok = matches!(visitor.viewer, Viewer::Admin)
        || form
            .csrf
            .as_deref()
            .is_some_and(|t| keys.check_form(&visitor.session, t));
    if !token_ok {
        return message(
            StatusCode::FORBIDDEN,
            "This form is out of date",
            "Reload the inbox and try again.",
        );
    }
    let definitions = state.definitions();
    let task = match state.store.task(id).await {
        Ok(Some(task)) => task,
        Ok(None) => {
            return message(
                StatusCode::NOT_FOUND,
                "No such task",
                &format!("There is no task {id}."),
            );
        }
        Err(e) => return unavailable(e),
    };
    if !visitor.viewer.may_act_on(&definitions, &task) {
        return message(
            StatusCode::FORBIDDEN,
            "Not your task",
            "This task belongs to a CSM outside your pools.",
        );
    }
    let actor = match &visitor.viewer {
        Viewer::Csm(id) => id.clone(),
        Viewer::Admin => "admin".into(),
    };
    let now = state.clock.now();
    let result = match action.as_str() {
        "done" => task_desk::done(&state.store, id, form.note, &actor, now).await,
        "snooze" => match form.until.as_deref().map(crate::clock::parse_time) {
            Some(Ok(until)) => task_desk::snooze(&state.store, id, until, &actor, now).await,
            _ => return back(keys, None, Some("Pick a date to snooze until.")),
        },
        "reassign" => match form.csm.as_deref() {
            Some(csm) => {
                task_desk::reassign(&state.store, &definitions, id, csm, &actor, now).await
            }
            None => return back(keys, None, Some("Pick a CSM to hand the task to.")),
        },
        other => {
            return message(
                StatusCode::NOT_FOUND,
                "No such action",
                &format!("Tasks can be done, snoozed or reassigned, not `{other}`."),
            );
        }
    };
    match result {
        Ok(done) => back(keys, Some(&done.message), None),
        Err(DeskError::Store(e)) => unavailable(e),
        Err(e) => back(keys, None, Some(&e.to_string())),
    }
}

/// Back to the inbox (303, so a reload does not post again), saying what happened.
fn back(keys: &PageKeys, done: Option<&str>, problem: Option<&str>) -> Response {
    let said = match (done, problem) {
        (Some(done), _) => format!("done:{done}"),
        (None, Some(problem)) => format!("problem:{problem}"),
        (None, None) => return Redirect::to("/inbox").into_response(),
    };
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("said", &keys.message(&said))
        .finish();
    Redirect::to(&format!("/inbox?{query}")).into_response()
}

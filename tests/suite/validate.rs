//! Every kind of definitions error, with its message and exact position.

use crate::common::{CONFIG, Project, assert_diagnostics, journey_with_steps};

#[test]
fn the_bundled_example_project_is_valid() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let loaded =
        touchline::definitions::load(&root.join("touchline.yaml"), std::path::Path::new(""));
    assert_diagnostics(&loaded, &[]);
    let definitions = loaded.definitions.expect("definitions");
    assert!(definitions.journeys.len() >= 7);
    assert_eq!(definitions.scores.len(), 4);
}

#[test]
fn yaml_syntax_error_is_positioned() {
    let project = Project::new().journey("bad", "name: Test\naudience: accounts\n  entry: x\n");
    assert_diagnostics(
        &project.load(),
        &[
            "journeys/bad.yaml:3:8: error: invalid YAML: mapping values are not allowed in this context",
        ],
    );
}

#[test]
fn misspelt_field_gets_a_suggestion() {
    let project = Project::new().journey(
        "typo",
        "name: Test\naudience: contacts\nsegmnet:\n  tiers: [tech]\nentry: { event: signed_up }\nsteps:\n  - exit: done\n",
    );
    assert_diagnostics(
        &project.load(),
        &[
            "journeys/typo.yaml:3:1: error: unknown field `segmnet`",
            "  help: did you mean `segment`?",
        ],
    );
}

#[test]
fn missing_field_points_at_the_mapping() {
    let project = Project::new().journey(
        "missing",
        "name: Test\nentry: { event: signed_up }\nsteps:\n  - exit: done\n",
    );
    assert_diagnostics(
        &project.load(),
        &["journeys/missing.yaml:1:1: error: missing field `audience`"],
    );
}

#[test]
fn several_problems_in_one_file_are_all_reported() {
    let project = Project::new().journey(
        "many",
        "name: Test\naudience: acounts\nentry: { schedule: '0 9 * *' }\nreentry: { after: 3 fortnights }\nsteps:\n  - exit: done\n",
    );
    assert_diagnostics(
        &project.load(),
        &[
            "journeys/many.yaml:2:11: error: unknown value `acounts`",
            "  help: did you mean `accounts`?",
            "journeys/many.yaml:3:20: error: invalid cron schedule `0 9 * *`: expected 5 fields (minute hour day-of-month month day-of-week), found 4",
            "journeys/many.yaml:4:19: error: invalid duration `3 fortnights`: unknown time unit \"fortnights\", supported units: ns, us/µs, ms, sec, min, hours, days, weeks, months, years (and few variations); write it like `30m`, `12h`, `3d` or `2w`",
        ],
    );
}

#[test]
fn unknown_step_kind() {
    let project = Project::new().journey(
        "kind",
        &journey_with_steps("  - id: ping\n    sms: { text: hi }\n"),
    );
    assert_diagnostics(
        &project.load(),
        &[
            "journeys/kind.yaml:6:5: error: unknown step kind or field `sms`",
            "  help: expected one of `id`, `tiers`, `email`, `webhook`, `task`, `wait`, `branch`, `exit`",
        ],
    );
}

#[test]
fn step_without_a_kind() {
    let project = Project::new().journey(
        "none",
        &journey_with_steps("  - id: nothing\n    tiers: [tech]\n"),
    );
    assert_diagnostics(
        &project.load(),
        &[
            "journeys/none.yaml:5:5: error: step has no kind",
            "  help: expected one of `email`, `webhook`, `task`, `wait`, `branch`, `exit`",
        ],
    );
}

#[test]
fn step_with_two_kinds() {
    let project =
        Project::new().journey("two", &journey_with_steps("  - wait: 1d\n    exit: done\n"));
    assert_diagnostics(
        &project.load(),
        &[
            "journeys/two.yaml:5:5: error: step has 2 kinds (`wait`, `exit`); a step does exactly one thing",
            "  help: expected one of `email`, `webhook`, `task`, `wait`, `branch`, `exit`",
        ],
    );
}

#[test]
fn goto_to_a_missing_step() {
    let steps = "  - id: check\n    branch:\n      - when: 'account.arr > 10'\n        goto: big-acount\n      - goto: done\n  - id: big-account\n    exit: big\n  - id: done\n    exit: small\n";
    let project = Project::new().journey("goto", &journey_with_steps(steps));
    assert_diagnostics(
        &project.load(),
        &[
            "journeys/goto.yaml:8:15: error: `goto` names a step that does not exist: `big-acount`",
            "  help: did you mean `big-account`?",
        ],
    );
}

#[test]
fn duplicate_step_ids() {
    let steps = "  - id: hello\n    email: { template: welcome }\n  - id: hello\n    exit: done\n";
    let project = Project::new().journey("dup", &journey_with_steps(steps));
    assert_diagnostics(
        &project.load(),
        &["journeys/dup.yaml:7:9: error: duplicate step id `hello` (first used on line 5)"],
    );
}

#[test]
fn duplicate_yaml_keys() {
    let project = Project::new().journey("keys", "name: A\nname: B\n");
    assert_diagnostics(
        &project.load(),
        &["journeys/keys.yaml:2:1: error: duplicate key `name` (first defined on line 1)"],
    );
}

#[test]
fn unknown_tier() {
    let project = Project::new().journey(
        "tier",
        &journey_with_steps("  - tiers: [tech, hihg]\n    email: { template: welcome }\n"),
    );
    assert_diagnostics(
        &project.load(),
        &[
            "journeys/tier.yaml:5:19: error: unknown value `hihg`",
            "  help: did you mean `high`?",
        ],
    );
}

#[test]
fn unknown_adoption_goal_template_endpoint_and_pool() {
    let text = "name: Test\naudience: contacts\nsegment:\n  adoption_goal: cost_reducton\nentry: { event: signed_up }\nsteps:\n  - email: { template: welcom }\n  - webhook: { endpoint: crn }\n  - task: { title: Call, assign: { round_robin: onbording } }\n";
    let project = Project::new().journey("refs", text);
    assert_diagnostics(
        &project.load(),
        &[
            "journeys/refs.yaml:4:18: error: unknown adoption goal `cost_reducton`",
            "  help: did you mean `cost_reduction`?",
            "journeys/refs.yaml:7:24: error: unknown template `welcom` (no file `templates/welcom.yaml`)",
            "  help: did you mean `welcome`?",
            "journeys/refs.yaml:8:26: error: unknown webhook endpoint `crn`",
            "  help: did you mean `crm`?",
            "journeys/refs.yaml:9:49: error: unknown CSM pool `onbording`",
            "  help: did you mean `onboarding`?",
        ],
    );
}

#[test]
fn invalid_cron_expression() {
    let project = Project::new().journey(
        "cron",
        "name: Test\naudience: accounts\nentry:\n  schedule: \"0 25 * * MON\"\nsteps:\n  - exit: done\n",
    );
    let loaded = project.load();
    let lines = crate::common::summary(&loaded);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0]
            .starts_with("journeys/cron.yaml:4:13: error: invalid cron schedule `0 25 * * MON`: "),
        "{lines:?}"
    );
}

#[test]
fn five_field_crontab_is_accepted() {
    let project = Project::new().journey(
        "cron",
        "name: Test\naudience: accounts\nentry:\n  schedule: \"30 8 * * MON-FRI\"\nsteps:\n  - exit: done\n",
    );
    assert_diagnostics(&project.load(), &[]);
}

#[test]
fn invalid_duration() {
    let project = Project::new().journey("wait", &journey_with_steps("  - wait: 3\n"));
    assert_diagnostics(
        &project.load(),
        &["journeys/wait.yaml:5:11: error: a wait needs a unit: write `3d`, `3h` or `3m`"],
    );
}

#[test]
fn loop_without_a_wait_is_an_error() {
    let steps = "  - id: mail\n    email: { template: welcome }\n  - id: again\n    branch:\n      - when: 'contact.subscribed'\n        goto: mail\n      - goto: out\n  - id: out\n    exit: done\n";
    let project = Project::new().journey("spin", &journey_with_steps(steps));
    assert_diagnostics(
        &project.load(),
        &[
            "journeys/spin.yaml:10:15: error: this loop never waits and would run forever: mail → again → mail",
            "  help: add a `wait` step inside the loop",
        ],
    );
}

#[test]
fn loop_with_a_wait_is_fine() {
    let steps = "  - id: mail\n    email: { template: welcome }\n  - wait: 7d\n  - id: again\n    branch:\n      - when: 'contact.subscribed'\n        goto: mail\n      - goto: out\n  - id: out\n    exit: done\n";
    let project = Project::new().journey("remind", &journey_with_steps(steps));
    assert_diagnostics(&project.load(), &[]);
}

#[test]
fn rhai_syntax_error_is_positioned_inside_the_when_string() {
    let text = "name: Test\naudience: accounts\nentry: { event: signed_up }\ngoal:\n  when: 'account.arr >> = 5'\nsteps:\n  - exit: done\n";
    let project = Project::new().journey("rule", text);
    let loaded = project.load();
    let lines = crate::common::summary(&loaded);
    // `account.arr >> = 5` starts at column 10; the `=` is its 16th character.
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("journeys/rule.yaml:5:25: error: rule syntax error: "),
        "{lines:?}"
    );
}

#[test]
fn rhai_error_in_a_double_quoted_string_accounts_for_escapes() {
    let text = "name: Test\naudience: accounts\nentry: { event: signed_up }\ngoal:\n  when: \"account.plan == \\\"pro\\\" && account.scroes.x > 1\"\nsteps:\n  - exit: done\n";
    let project = Project::new().journey("escaped", text);
    assert_diagnostics(
        &project.load(),
        &[
            "journeys/escaped.yaml:5:45: error: `account` has no field `scroes`",
            "  help: did you mean `scores`?",
        ],
    );
}

#[test]
fn rhai_error_in_a_block_scalar_points_at_its_line() {
    let text = "name: Test\naudience: accounts\nentry: { event: signed_up }\nsegment:\n  when: |\n    account.arr > 10\n      && account.scores.utilisation < 50\nsteps:\n  - exit: done\n";
    let project = Project::new().journey("block", text);
    assert_diagnostics(
        &project.load(),
        &[
            "journeys/block.yaml:7:25: error: unknown score `utilisation`",
            "  help: did you mean `utilization`?",
        ],
    );
}

#[test]
fn unknown_score_name_is_positioned_on_the_name() {
    let text = "name: Test\naudience: accounts\nentry:\n  condition: 'account.scores.implementaton >= 80'\nsteps:\n  - exit: done\n";
    let project = Project::new().journey("score", text);
    assert_diagnostics(
        &project.load(),
        &[
            "journeys/score.yaml:4:30: error: unknown score `implementaton`",
            "  help: did you mean `implementation`?",
        ],
    );
}

#[test]
fn contact_is_only_known_in_contact_journeys() {
    let text = "name: Test\naudience: accounts\nentry: { event: signed_up }\nsegment:\n  when: 'contact.role == \"admin\"'\nsteps:\n  - exit: done\n";
    let project = Project::new().journey("who", text);
    assert_diagnostics(
        &project.load(),
        &[
            "journeys/who.yaml:5:10: error: `contact` is only available in journeys with `audience: contacts`",
        ],
    );
}

#[test]
fn unreachable_step_is_a_warning() {
    let steps = "  - id: first\n    email: { template: welcome }\n  - id: stop\n    exit: done\n  - id: orphan\n    email: { template: welcome }\n";
    let project = Project::new().journey("orphan", &journey_with_steps(steps));
    let loaded = project.load();
    assert_diagnostics(
        &loaded,
        &["journeys/orphan.yaml:9:9: warning: step `orphan` is never reached"],
    );
    assert!(
        loaded.definitions.is_some(),
        "warnings do not stop definitions from loading"
    );
}

#[test]
fn score_script_errors_point_into_the_script() {
    let project = Project::new().file(
        "scripts/utilization.rhai",
        "let m = account.metrics;\nm.logins * \n",
    );
    assert_diagnostics(
        &project.load(),
        &[
            "scripts/utilization.rhai:3:1: error: the rule ends too early: is a bracket not closed, or an operand missing?",
        ],
    );
}

#[test]
fn config_errors_unknown_csm_and_time_zone() {
    let config = crate::common::CONFIG
        .replace("timezone: Europe/Berlin", "timezone: Europe/Berln")
        .replace("onboarding: [ana, ben]", "onboarding: [ana, bne]");
    let project = Project::new().file("touchline.yaml", &config);
    assert_diagnostics(
        &project.load(),
        &[
            "touchline.yaml:1:11: error: unknown time zone `Europe/Berln`; did you mean `Europe/Berlin`?",
        ],
    );
    let config = crate::common::CONFIG.replace("onboarding: [ana, ben]", "onboarding: [ana, bne]");
    let project = Project::new().file("touchline.yaml", &config);
    assert_diagnostics(
        &project.load(),
        &[
            "touchline.yaml:15:21: error: unknown CSM `bne` in pool `onboarding`",
            "  help: did you mean `ben`?",
        ],
    );
}

#[test]
fn secrets_are_named_by_environment_variable() {
    let config = format!(
        "{}email:\n  smtp: {{ host: smtp.example.com, password: hunter2 }}\n",
        crate::common::CONFIG
    );
    let project = Project::new().file("touchline.yaml", &config);
    assert_diagnostics(
        &project.load(),
        &[
            "touchline.yaml:19:35: error: unknown field `password`",
            "  help: did you mean `password_env`?",
        ],
    );
}

#[test]
fn journey_id_must_match_the_file_name() {
    let text = "id: welcome-flow\nname: Test\naudience: accounts\nentry: { event: signed_up }\nsteps:\n  - exit: done\n";
    let project = Project::new().journey("onboarding", text);
    assert_diagnostics(
        &project.load(),
        &[
            "journeys/onboarding.yaml:1:5: error: journey id `welcome-flow` does not match its file name `onboarding`",
            "  help: rename the file to `welcome-flow.yaml` or set `id: onboarding`",
        ],
    );
}

#[test]
fn templates_reading_unknown_fields_fail_validation() {
    let project = Project::new()
        .file(
            "templates/welcome.yaml",
            "subject: 'Welcome, {{ account.nmae }}'\ntext: |\n  Hi {{ contact.first_name | default('there') }},\n  your score is {{ account.scores.utilisation }}.\n  {{ customer.id }}\nhtml: '<p>{% if %}</p>'\n",
        )
        .journey(
            "tasks",
            &journey_with_steps(
                "  - task: { title: 'Call {{ contact.frist_name }}', assign: owner }\n  - webhook: { endpoint: crm, body: { who: '{{ owner.mail }}' } }\n",
            ),
        );
    assert_diagnostics(
        &project.load(),
        &[
            "journeys/tasks.yaml:5:29: error: unknown field `contact.frist_name`",
            "  help: did you mean `first_name`?",
            "journeys/tasks.yaml:6:48: error: unknown field `owner.mail`",
            "  help: did you mean `email`?",
            "templates/welcome.yaml:1:23: error: unknown field `account.nmae`",
            "  help: did you mean `name`?",
            "templates/welcome.yaml:4:20: error: unknown score `account.scores.utilisation`",
            "  help: did you mean `utilization`?",
            "templates/welcome.yaml:5:6: error: unknown template variable `customer`",
            "  help: expected one of `account`, `contact`, `owner`, `links`, `now`, `today`",
            "templates/welcome.yaml:6:8: error: template does not compile: unexpected end of block",
        ],
    );
}

#[test]
fn every_file_the_definitions_read_is_watched() {
    let config = CONFIG.replace(
        "utilization: { script: scripts/utilization.rhai }",
        "utilization: { script: formulas/utilization.rhai }",
    ) + "email:\n  templates: mail\n";
    let project = Project::new()
        .file("touchline.yaml", &config)
        .file(
            "formulas/utilization.rhai",
            "let m = account.metrics;\nratio(m.logins, 10) * 100.0\n",
        )
        .file("mail/welcome.yaml", "subject: Hi\ntext: Hello\n")
        .journey(
            "hello",
            &journey_with_steps("  - email: { template: welcome }\n"),
        );
    let loaded = project.load();
    let definitions = loaded.definitions.expect("valid");
    let mut watched: Vec<String> = definitions
        .watched
        .iter()
        .map(|p| {
            p.strip_prefix(project.root())
                .unwrap_or(p)
                .display()
                .to_string()
        })
        .collect();
    watched.sort();
    assert_eq!(
        watched,
        [
            "formulas/utilization.rhai",
            "journeys",
            "journeys/hello.yaml",
            "mail",
            "mail/welcome.yaml",
            "touchline.yaml",
        ]
    );
}

#[test]
fn a_holdout_is_a_share_up_to_half_and_names_known_scores() {
    let with = |holdout: &str| {
        format!(
            "name: Test\naudience: accounts\nentry: {{ event: account_created }}\ngoal: {{ when: 'account.scores.utilization >= 60' }}\nholdout: {holdout}\nsteps:\n  - exit: done\n"
        )
    };
    let project = Project::new()
        .journey("big", &with("70%"))
        .journey("bare", &with("10"))
        .journey("named", &with("{ share: 10%, scores: [utilisation] }"))
        .journey("fine", &with("{ share: 12.5%, window: 7d }"));
    assert_diagnostics(
        &project.load(),
        &[
            "journeys/bare.yaml:5:10: error: a holdout is a share: write `10%`",
            "journeys/big.yaml:5:10: error: invalid holdout `70%`: must be from 0% to 50%, so that most of the journey's audience gets it",
            "journeys/named.yaml:5:33: error: unknown score `utilisation`",
            "  help: did you mean `utilization`?",
        ],
    );
}

#[test]
fn a_holdout_with_nothing_to_compare_is_a_warning() {
    let project = Project::new().journey(
        "plain",
        "name: Test\naudience: accounts\nentry: { event: account_created }\nholdout: 10%\nsteps:\n  - exit: done\n",
    );
    assert_diagnostics(
        &project.load(),
        &[
            "journeys/plain.yaml: warning: the holdout has nothing to compare: the goal reads no score",
            "  help: name them: `holdout: { share: 10%, scores: [utilization] }`",
        ],
    );
}

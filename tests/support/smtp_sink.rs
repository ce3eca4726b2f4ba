//! A small SMTP server for tests: accepts mail over TCP (or implicit TLS), refuses
//! recipients containing `reject` permanently (550) and `later` temporarily (451), and keeps
//! what it received. Over plain TCP and STARTTLS it offers PIPELINING, as Postfix does; over
//! implicit TLS it does not, so both ways of sending are tested.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// Messages received, as raw DATA.
pub type Inbox = Arc<Mutex<Vec<String>>>;

/// Starts the server on a free loopback port; returns the port and the inbox.
pub async fn start() -> (u16, Inbox) {
    serve(None).await
}

/// Starts the server speaking TLS from the first byte with `config` (port 465 style).
pub async fn start_tls(config: Arc<tokio_rustls::rustls::ServerConfig>) -> (u16, Inbox) {
    serve(Some(tokio_rustls::TlsAcceptor::from(config))).await
}

/// Starts the server speaking plain SMTP that offers STARTTLS with `config` (port 587
/// style); mail is only taken once the session is encrypted.
pub async fn start_starttls(config: Arc<tokio_rustls::rustls::ServerConfig>) -> (u16, Inbox) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let inbox: Inbox = Arc::default();
    let received = inbox.clone();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let received = received.clone();
            let _ = socket.set_nodelay(true);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Some(socket) = until_starttls(socket).await
                    && let Ok(stream) = acceptor.accept(socket).await
                {
                    conversation(stream, received, true).await;
                }
            });
        }
    });
    (port, inbox)
}

/// The plain part of a STARTTLS session: the socket once the client asked to encrypt.
async fn until_starttls(socket: tokio::net::TcpStream) -> Option<tokio::net::TcpStream> {
    let mut reader = BufReader::new(socket);
    reader
        .get_mut()
        .write_all(b"220 sink ESMTP\r\n")
        .await
        .ok()?;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let upper = line.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") {
            b"250-sink\r\n250-STARTTLS\r\n250 8BITMIME\r\n"
        } else if upper.starts_with("STARTTLS") {
            reader
                .get_mut()
                .write_all(b"220 2.0.0 ready\r\n")
                .await
                .ok()?;
            return Some(reader.into_inner());
        } else {
            b"530 5.7.0 must issue a STARTTLS command first\r\n"
        };
        reader.get_mut().write_all(reply).await.ok()?;
    }
}

async fn serve(tls: Option<tokio_rustls::TlsAcceptor>) -> (u16, Inbox) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let inbox: Inbox = Arc::default();
    let received = inbox.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let received = received.clone();
            // Replies go out at once (no Nagle delay), like a real server's.
            let _ = socket.set_nodelay(true);
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    None => session(socket, received, true).await,
                    Some(acceptor) => {
                        // A client that does not trust the certificate hangs up here.
                        if let Ok(stream) = acceptor.accept(socket).await {
                            session(stream, received, false).await;
                        }
                    }
                }
            });
        }
    });
    (port, inbox)
}

async fn session(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    received: Inbox,
    pipelining: bool,
) {
    if stream.write_all(b"220 sink ESMTP\r\n").await.is_ok() {
        conversation(stream, received, pipelining).await;
    }
}

/// Commands and replies after the greeting.
async fn conversation(
    stream: impl AsyncRead + AsyncWrite + Unpin,
    received: Inbox,
    pipelining: bool,
) {
    let (read, mut write) = tokio::io::split(stream);
    let mut lines = BufReader::new(read).lines();
    // Whether the client sent its MAIL FROM, RCPT TO and DATA in one go (RFC 2920).
    let mut pipelined = false;
    // The envelope sender, kept as `Return-Path` (RFC 5321 4.4), as a server delivering the
    // mail would.
    let mut return_path = String::new();
    while let Ok(Some(line)) = lines.next_line().await {
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("MAIL") {
            let waiting = lines.get_ref().buffer().to_ascii_uppercase();
            pipelined = waiting.windows(6).any(|w| w == b"DATA\r\n");
            return_path = line
                .split_once(':')
                .map(|(_, path)| path.split_whitespace().next().unwrap_or_default())
                .unwrap_or_default()
                .to_string();
        }
        let reply: &[u8] = if upper.starts_with("EHLO") && pipelining {
            b"250-sink\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
        } else if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            b"250-sink\r\n250 8BITMIME\r\n"
        } else if upper.starts_with("RCPT") && line.contains("reject") {
            b"550 5.1.1 no such mailbox\r\n"
        } else if upper.starts_with("RCPT") && line.contains("later") {
            b"451 4.3.0 try again later\r\n"
        } else if upper.starts_with("DATA") {
            let _ = write.write_all(b"354 go ahead\r\n").await;
            // A trace line on top, as a real server adds one.
            let mut data = format!(
                "Return-Path: {return_path}\nReceived: by sink with ESMTP{}\n",
                if pipelined { " (pipelined)" } else { "" }
            );
            let mut complete = false;
            while let Ok(Some(line)) = lines.next_line().await {
                if line == "." {
                    complete = true;
                    break;
                }
                // The sender doubled a leading dot (RFC 5321 4.5.2).
                data.push_str(line.strip_prefix('.').unwrap_or(&line));
                data.push('\n');
            }
            // A client that died mid-message sent nothing: a server only queues what ends
            // with the final dot.
            if !complete {
                break;
            }
            received.lock().expect("inbox").push(data);
            b"250 2.0.0 queued\r\n"
        } else if upper.starts_with("QUIT") {
            let _ = write.write_all(b"221 bye\r\n").await;
            break;
        } else {
            b"250 OK\r\n"
        };
        if write.write_all(reply).await.is_err() || write.flush().await.is_err() {
            break;
        }
    }
}

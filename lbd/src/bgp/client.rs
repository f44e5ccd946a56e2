//! A small client of BIRD's control socket (tokio): connect, read the greeting, send one
//! command at a time and read its whole reply.

use super::control::{BadLine, Reply, ReplyReader};
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// How long one command may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("BIRD control socket {path}: {source}")]
    Connect {
        path: String,
        source: std::io::Error,
    },
    #[error("BIRD control socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("BIRD control socket: {0}")]
    Protocol(#[from] BadLine),
    #[error("BIRD control socket closed")]
    Closed,
    #[error("BIRD did not answer {0:?} within {COMMAND_TIMEOUT:?}")]
    Timeout(String),
    #[error("BIRD refused {command:?}: {code} {text}")]
    Refused {
        command: String,
        code: u16,
        text: String,
    },
}

pub struct BirdClient {
    stream: BufReader<UnixStream>,
}

impl BirdClient {
    /// Connects and reads BIRD's greeting.
    pub async fn connect(path: &Path) -> Result<BirdClient, ClientError> {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|source| ClientError::Connect {
                path: path.display().to_string(),
                source,
            })?;
        let mut c = BirdClient {
            stream: BufReader::new(stream),
        };
        c.reply("greeting").await?;
        Ok(c)
    }

    /// Sends `command` and returns its reply, an error reply (`8xxx`, `9xxx`) as
    /// [`ClientError::Refused`].
    pub async fn ask(&mut self, command: &str) -> Result<Reply, ClientError> {
        self.stream
            .get_mut()
            .write_all(format!("{command}\n").as_bytes())
            .await?;
        let reply = self.reply(command).await?;
        if reply.is_error() {
            return Err(ClientError::Refused {
                command: command.to_string(),
                code: reply.code(),
                text: reply.text(),
            });
        }
        Ok(reply)
    }

    async fn reply(&mut self, what: &str) -> Result<Reply, ClientError> {
        let read = async {
            let mut reader = ReplyReader::default();
            let mut line = String::new();
            loop {
                line.clear();
                if self.stream.read_line(&mut line).await? == 0 {
                    return Err(ClientError::Closed);
                }
                if let Some(r) = reader.line(line.trim_end_matches('\n'))? {
                    return Ok(r);
                }
            }
        };
        tokio::time::timeout(COMMAND_TIMEOUT, read)
            .await
            .map_err(|_| ClientError::Timeout(what.to_string()))?
    }
}

//! Why a command failed, as the exit code scripts test and the message on stderr.

use std::fmt;
use std::io::Write;
use std::process::ExitCode;

use wamp_client::{
    CallError, ConnectError, Dict, PublishError, RegisterError, Rejection, SubscribeError, Value,
};

use crate::json;

/// The exit codes (also in `wamp --help` and the README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Code {
    /// Bad command line: unknown option, malformed `--kw`, unreadable key file, bad URL.
    Usage = 1,
    /// The router could not be reached, refused the session for a reason other than
    /// authentication, or the connection or session was lost.
    Connection = 2,
    /// The router refused the credentials.
    Auth = 3,
    /// The router or a callee answered with a WAMP error.
    Wamp = 4,
    /// SIGINT or SIGTERM before the command had done what it was asked.
    Interrupted = 5,
}

/// A failed command: its exit code and what to print on stderr.
#[derive(Debug)]
pub(crate) struct Fail {
    code: Code,
    what: What,
}

#[derive(Debug)]
enum What {
    /// A plain message (printed after `wamp: `).
    Message(anyhow::Error),
    /// A WAMP error reply: `URI: message` alone on the first line (the message is the first
    /// argument when it is a string), the rest of the payload as JSON on a second line.
    Wamp {
        uri: String,
        args: Vec<Value>,
        kwargs: Dict,
    },
}

/// A command's result.
pub(crate) type Outcome<T = ()> = Result<T, Fail>;

impl Fail {
    pub(crate) fn new(code: Code, err: impl Into<anyhow::Error>) -> Fail {
        Fail {
            code,
            what: What::Message(err.into()),
        }
    }

    pub(crate) fn usage(err: impl Into<anyhow::Error>) -> Fail {
        Fail::new(Code::Usage, err)
    }

    pub(crate) fn connection(err: impl Into<anyhow::Error>) -> Fail {
        Fail::new(Code::Connection, err)
    }

    pub(crate) fn interrupted(during: &str) -> Fail {
        Fail::new(Code::Interrupted, anyhow::anyhow!("interrupted {during}"))
    }

    fn wamp(uri: String, args: Vec<Value>, kwargs: Dict) -> Fail {
        Fail {
            code: Code::Wamp,
            what: What::Wamp { uri, args, kwargs },
        }
    }

    fn rejected(r: Rejection) -> Fail {
        Fail::wamp(r.uri, r.args, r.kwargs)
    }

    fn closed() -> Fail {
        Fail::connection(anyhow::anyhow!("the session ended before the answer came"))
    }

    #[cfg(test)]
    pub(crate) fn code(&self) -> Code {
        self.code
    }

    /// Prints the message on stderr and gives the exit code.
    pub(crate) fn report(self) -> ExitCode {
        // Not eprintln!: it panics when stderr is closed.
        let _ = writeln!(std::io::stderr().lock(), "{self}");
        ExitCode::from(self.code as u8)
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.what {
            // The library's errors already end with their sources' text.
            What::Message(e) => write!(f, "wamp: {e}"),
            What::Wamp { uri, args, kwargs } => {
                write!(f, "{uri}")?;
                let mut rest = args.as_slice();
                if let Some((Value::Str(message), tail)) = args.split_first() {
                    write!(f, ": {message}")?;
                    rest = tail;
                }
                if !rest.is_empty() || !kwargs.is_empty() {
                    let payload = json::payload_json(rest, kwargs);
                    write!(f, "\n{}", serde_json::Value::Object(payload))?;
                }
                Ok(())
            }
        }
    }
}

impl From<ConnectError> for Fail {
    fn from(e: ConnectError) -> Fail {
        let code = match &e {
            ConnectError::InvalidUrl { .. } | ConnectError::NoRealm => Code::Usage,
            ConnectError::AuthenticationFailed { .. } | ConnectError::ChallengeRefused { .. } => {
                Code::Auth
            }
            _ => Code::Connection,
        };
        Fail::new(code, e)
    }
}

impl From<CallError> for Fail {
    fn from(e: CallError) -> Fail {
        match e {
            CallError::Application { uri, args, kwargs } => Fail::wamp(uri, args, kwargs),
            CallError::ConnectionClosed => Fail::closed(),
            other => Fail::usage(other),
        }
    }
}

impl From<PublishError> for Fail {
    fn from(e: PublishError) -> Fail {
        match e {
            PublishError::Rejected(r) => Fail::rejected(r),
            PublishError::ConnectionClosed => Fail::closed(),
            other => Fail::usage(other),
        }
    }
}

impl From<SubscribeError> for Fail {
    fn from(e: SubscribeError) -> Fail {
        match e {
            SubscribeError::Rejected(r) => Fail::rejected(r),
            other => Fail::connection(other),
        }
    }
}

impl From<RegisterError> for Fail {
    fn from(e: RegisterError) -> Fail {
        match e {
            RegisterError::Rejected(r) => Fail::rejected(r),
            other => Fail::connection(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wamp_errors_print_uri_and_message_then_the_rest() {
        let e = Fail::from(CallError::new("wamp.error.no_such_procedure").with_args(["no callee"]));
        assert_eq!(e.code(), Code::Wamp);
        assert_eq!(e.to_string(), "wamp.error.no_such_procedure: no callee");

        let e = Fail::from(
            CallError::new("com.example.failed")
                .with_args([Value::from("boom"), Value::UInt(42)])
                .with_kwargs([("detail", "x")]),
        );
        assert_eq!(
            e.to_string(),
            "com.example.failed: boom\n{\"args\":[42],\"kwargs\":{\"detail\":\"x\"}}"
        );
        assert_eq!(Fail::from(CallError::new("a.b")).to_string(), "a.b");
    }

    #[test]
    fn connect_errors_are_classified() {
        let auth = ConnectError::AuthenticationFailed {
            reason: "wamp.error.authentication_failed".into(),
            message: None,
        };
        assert_eq!(Fail::from(auth).code(), Code::Auth);
        let realm = ConnectError::Aborted {
            reason: "wamp.error.no_such_realm".into(),
            message: None,
        };
        assert_eq!(Fail::from(realm).code(), Code::Connection);
        assert_eq!(Fail::from(ConnectError::Closed).code(), Code::Connection);
        assert_eq!(
            Fail::from(CallError::ConnectionClosed).code(),
            Code::Connection
        );
        assert_eq!(Fail::interrupted("x").code(), Code::Interrupted);
    }
}

//! `wamp-router check-config`: what starting would check of a configuration file, without
//! binding any socket (the parse and validation, then the files the transports need).

use std::path::Path;

use crate::config::{self, Config, ConfigError, Listen};
use crate::transport::tls::Tls;

/// Reads and validates the configuration at `path` like [`Config::from_file`], then checks
/// what [`crate::Server::start`] would find wrong before listening: every TLS transport's
/// certificate, key and CA files load and go together, and every Unix socket's directory
/// exists. Errors name the file, the key and the line.
pub fn check_config_file(path: &Path) -> Result<Config, ConfigError> {
    let (config, text) = Config::read(path)?;
    let file = path.display().to_string();
    check_transports(&config, &text, &file)?;
    Ok(config)
}

fn check_transports(config: &Config, text: &str, file: &str) -> Result<(), ConfigError> {
    for (i, t) in config.transports.iter().enumerate() {
        if let Some(tls) = t.tls() {
            Tls::load(tls)
                .map_err(|e| config::transport_error(text, file, i, "tls", e.to_string()))?;
        }
        if let Listen::Unix { path, .. } = t.listen() {
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
            if let Some(dir) = dir.filter(|d| !d.is_dir()) {
                return Err(config::transport_error(
                    text,
                    file,
                    i,
                    "unix_socket",
                    format!("the directory {} does not exist", dir.display()),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory of its own for one test, removed at the end.
    struct Dir(std::path::PathBuf);

    impl Dir {
        fn new(name: &str) -> Dir {
            let d = std::env::temp_dir().join(format!("wamp-check-{}-{name}", std::process::id()));
            std::fs::create_dir_all(&d).unwrap();
            Dir(d)
        }

        fn write(&self, name: &str, text: &str) -> std::path::PathBuf {
            let p = self.0.join(name);
            std::fs::write(&p, text).unwrap();
            p
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn tls_config(cert: &Path, key: &Path) -> String {
        format!(
            "[[realm]]\nname = \"r\"\n\n[[transport]]\nbind = \"127.0.0.1:0\"\n\
             tls = {{ certificate = \"{}\", key = \"{}\" }}\n",
            cert.display(),
            key.display()
        )
    }

    #[test]
    fn tls_files_are_loaded_and_must_go_together() {
        let dir = Dir::new("tls");
        let [cert_file, key_file, other_file] = crate::transport::tls::test_files(&dir.0);

        let good = dir.write("good.toml", &tls_config(&cert_file, &key_file));
        check_config_file(&good).unwrap();
        // Config::from_file alone does not look at the files.
        let mismatched = dir.write("bad.toml", &tls_config(&cert_file, &other_file));
        Config::from_file(&mismatched).unwrap();
        let e = check_config_file(&mismatched).unwrap_err();
        assert_eq!((e.key.as_str(), e.line), ("transport[0].tls", 6), "{e}");
        assert!(e.message.contains("do not go together"), "{e}");
        let missing = dir.write(
            "missing.toml",
            &tls_config(&dir.0.join("nope.pem"), &key_file),
        );
        let e = check_config_file(&missing).unwrap_err();
        assert!(e.message.contains("nope.pem"), "{e}");
        assert_eq!(e.file, missing.display().to_string());
    }

    #[test]
    fn a_unix_socket_needs_its_directory() {
        let dir = Dir::new("unix");
        let text = |path: &Path| {
            format!(
                "[[transport]]\ntype = \"rawsocket\"\nunix_socket = \"{}\"\n[[realm]]\nname = \"r\"\n",
                path.display()
            )
        };
        let good = dir.write("good.toml", &text(&dir.0.join("wamp.sock")));
        check_config_file(&good).unwrap();
        let bad = dir.write("bad.toml", &text(&dir.0.join("absent/wamp.sock")));
        let e = check_config_file(&bad).unwrap_err();
        assert_eq!(
            (e.key.as_str(), e.line),
            ("transport[0].unix_socket", 3),
            "{e}"
        );
    }
}

//! Test certificates, made with the `openssl` command line (Debian's `openssl`, which
//! `scripts/test.sh` installs): a CA, and server or client certificates it signs, with the
//! names asked for.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A certificate authority in a directory of its own.
pub struct TestCa {
    pub dir: PathBuf,
    /// The CA's certificate (PEM).
    pub cert: PathBuf,
    key: PathBuf,
}

/// A certificate and its key (PEM files).
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl (install Debian's openssl package; scripts/test.sh does)");
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

impl TestCa {
    /// A new CA named `name` in `dir` (created).
    pub fn new(dir: &Path, name: &str) -> TestCa {
        std::fs::create_dir_all(dir).unwrap();
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}.key"));
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "3",
                "-subj",
                &format!("/CN=ottr test CA {name}"),
                "-keyout",
                key.to_str().unwrap(),
                "-out",
                cert.to_str().unwrap(),
            ],
        );
        TestCa {
            dir: dir.to_owned(),
            cert,
            key,
        }
    }

    /// A certificate for `names` (DNS names, or IP addresses as `IP:1.2.3.4`), for a server
    /// or (`client`) a client, signed by this CA.
    pub fn issue(&self, file: &str, names: &[&str], client: bool) -> Issued {
        let key = self.dir.join(format!("{file}.key"));
        let csr = self.dir.join(format!("{file}.csr"));
        let cert = self.dir.join(format!("{file}.pem"));
        let extensions = self.dir.join(format!("{file}.ext"));
        let alt: Vec<String> = names
            .iter()
            .map(|name| {
                if name.starts_with("IP:") {
                    (*name).to_owned()
                } else {
                    format!("DNS:{name}")
                }
            })
            .collect();
        std::fs::write(
            &extensions,
            format!(
                "subjectAltName={}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage={}\n",
                alt.join(","),
                if client { "clientAuth" } else { "serverAuth" }
            ),
        )
        .unwrap();
        openssl(
            &self.dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-subj",
                &format!("/CN={}", names.first().copied().unwrap_or(file)),
                "-keyout",
                key.to_str().unwrap(),
                "-out",
                csr.to_str().unwrap(),
            ],
        );
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                csr.to_str().unwrap(),
                "-CA",
                self.cert.to_str().unwrap(),
                "-CAkey",
                self.key.to_str().unwrap(),
                "-CAcreateserial",
                "-days",
                "3",
                "-extfile",
                extensions.to_str().unwrap(),
                "-out",
                cert.to_str().unwrap(),
            ],
        );
        Issued { cert, key }
    }
}

//! Certificates, password files and Mosquitto password databases for tests of TLS and
//! authentication against a real broker. Included with `#[path]` by the gateway's tests that
//! need it (rcgen is a dev-dependency of the gateway only).

#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)] // test code

use std::path::{Path, PathBuf};
use std::process::Command;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

/// A CA, a server certificate for 127.0.0.1 and localhost, and a client certificate (`gw-1`)
/// it signed, written as PEM files into a directory. The client key is mode 0600, as the
/// gateway requires.
pub struct Pki {
    pub ca_file: String,
    pub server_cert: String,
    pub server_key: String,
    pub client_cert: String,
    pub client_key: String,
}

impl Pki {
    /// Makes the certificates in `dir` (created when missing).
    pub fn new(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        // Distinct names: a certificate whose subject equals its issuer's looks self-signed.
        let named = |sans: Vec<String>, cn: &str| {
            let mut p = CertificateParams::new(sans).unwrap();
            p.distinguished_name.push(DnType::CommonName, cn);
            p
        };
        let write = |name: &str, text: &str| {
            std::fs::write(dir.join(name), text).unwrap();
            dir.join(name).display().to_string()
        };
        let mut ca_params = named(Vec::new(), "firebreak test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let ca_file = write("ca.pem", &ca.pem());
        let server_key = KeyPair::generate().unwrap();
        let server = named(vec!["127.0.0.1".into(), "localhost".into()], "localhost")
            .signed_by(&server_key, &ca)
            .unwrap();
        let server_cert = write("server.pem", &server.pem());
        let server_key = write("server.key", &server_key.serialize_pem());
        let client_key = KeyPair::generate().unwrap();
        let client = named(vec!["gw-1".into()], "gw-1")
            .signed_by(&client_key, &ca)
            .unwrap();
        let client_cert = write("client.pem", &client.pem());
        let client_key = write("client.key", &client_key.serialize_pem());
        private(Path::new(&client_key));
        Pki {
            ca_file,
            server_cert,
            server_key,
            client_cert,
            client_key,
        }
    }

    /// Mosquitto's listener lines for this server certificate.
    pub fn mosquitto_tls(&self) -> String {
        format!(
            "cafile {}\ncertfile {}\nkeyfile {}\n",
            self.ca_file, self.server_cert, self.server_key
        )
    }
}

/// Makes `path` mode 0600.
pub fn private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Writes `text` into `dir/name`, mode 0600; its path.
pub fn secret_file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    private(&path);
    path.display().to_string()
}

/// A Mosquitto password file (`mosquitto_passwd -b -c`) in `dir` with one user.
pub fn passwd(dir: &Path, user: &str, password: &str) -> PathBuf {
    let path = dir.join("passwd");
    let ok = Command::new("mosquitto_passwd")
        .args(["-b", "-c"])
        .arg(&path)
        .args([user, password])
        .status()
        .unwrap();
    assert!(ok.success(), "mosquitto_passwd failed");
    path
}

//! A real, throwaway OpenLDAP `slapd` for the LDAP connector's tests: its own temporary directory,
//! free loopback ports for plain LDAP (StartTLS offered) and LDAPS, a fresh CA and server
//! certificate, the "AD-lite" schema (`tests/ldap/adlite.schema`), the `memberof` overlay and an
//! AD-like page size limit for the read-only service account. Killed and cleaned up on drop.
//!
//! Needs Debian's `slapd`, `ldap-utils` and `openssl` (`scripts/test` installs them). Self-contained
//! (std, tokio, base64, uuid) so that benches can include it with
//! `#[path = "../tests/api/slapd.rs"] mod slapd;`.
//!
//! Directory layout (suffix `dc=example,dc=org`):
//! - Simple binds need TLS (StartTLS or LDAPS), as on a domain controller that requires signing:
//!   over plain LDAP they get confidentialityRequired (13).
//! - `cn=admin,dc=example,dc=org` / `secret`: rootdn, unlimited, used by `add`/`modify`/`delete`.
//! - `cn=rosterd,dc=example,dc=org` / `reader-secret`: the connector's service account. Reads
//!   every entry and attribute under the suffix (operational ones too: `entryUUID`, `memberOf`,
//!   `objectGUID`) except `userPassword`. Like AD's MaxPageSize, a search without the paged
//!   results control ends with sizeLimitExceeded after 1000 entries; paged searches may return
//!   any number of entries with pages of up to 1000 (a larger page size is refused with
//!   adminLimitExceeded "illegal pagedResults page size", where AD would silently use 1000).
//! - Anonymous: the root DSE only.
//! - `ou=people` for users (`users_ldif`), `ou=groups` for `groupOfNames` groups (`group_ldif`);
//!   the memberof overlay maintains `memberOf` on members (operational there: ask for it by
//!   name or with `+`; `*` does not return it) and drops deleted users from groups.
//!
//! `ROSTERD_TEST_SLAPD_DEBUG=<slapd -d level>` (e.g. `stats`) logs more to `<dir>/slapd.log` and
//! keeps the directory after the test.

#![allow(dead_code)]

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use tokio::process::Command;

pub const BASE: &str = "dc=example,dc=org";
pub const PEOPLE: &str = "ou=people,dc=example,dc=org";
pub const GROUPS: &str = "ou=groups,dc=example,dc=org";
/// The rootdn: no ACLs, no limits.
pub const ADMIN_DN: &str = "cn=admin,dc=example,dc=org";
pub const ADMIN_PASSWORD: &str = "secret";
/// The read-only service account the connector binds as.
pub const BIND_DN: &str = "cn=rosterd,dc=example,dc=org";
pub const BIND_PASSWORD: &str = "reader-secret";
/// The service account's size limit without paging, and its largest page size.
pub const MAX_PAGE_SIZE: usize = 1000;
/// userAccountControl NORMAL_ACCOUNT, and with ACCOUNTDISABLE (2).
pub const UAC_ENABLED: u32 = 512;
pub const UAC_DISABLED: u32 = 514;

const ADLITE_SCHEMA: &str = include_str!("../ldap/adlite.schema");
const START_ATTEMPTS: usize = 5;
const READY_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Slapd {
    dir: PathBuf,
    child: Option<Child>,
    ldap_port: u16,
    ldaps_port: u16,
    files: AtomicUsize,
    keep: bool,
}

impl Slapd {
    pub const BASE: &str = BASE;
    pub const ADMIN_DN: &str = ADMIN_DN;
    pub const ADMIN_PASSWORD: &str = ADMIN_PASSWORD;
    pub const BIND_DN: &str = BIND_DN;
    pub const BIND_PASSWORD: &str = BIND_PASSWORD;

    /// Starts slapd on free loopback ports with only the base entries (suffix, `ou=people`,
    /// `ou=groups`, the service account) and waits until both ports accept connections.
    pub async fn start() -> Slapd {
        Slapd::start_with("").await
    }

    /// Like `start`, with `ldif` (plain content records, no `changetype`) loaded too: with
    /// `slapadd` before slapd starts (12 000 users in ~0.3 s rather than ~2.5 s through
    /// `add`), except records with `member` values (groups), which are added over LDAP once
    /// slapd runs because `slapadd` bypasses the memberof overlay.
    pub async fn start_with(ldif: &str) -> Slapd {
        let started = Instant::now();
        let debug = std::env::var("ROSTERD_TEST_SLAPD_DEBUG").ok();
        let mut slapd = Slapd {
            dir: unique_dir(debug.is_some()),
            child: None,
            ldap_port: 0,
            ldaps_port: 0,
            files: AtomicUsize::new(0),
            keep: debug.is_some(),
        };
        let dir = slapd.dir.clone();
        std::fs::create_dir_all(dir.join("db")).expect("create the slapd directory");
        if let Some(level) = &debug {
            eprintln!(
                "slapd: directory {} (kept), debug level {level}",
                dir.display()
            );
        }
        write(&dir.join("adlite.schema"), ADLITE_SCHEMA);
        make_certificates(&dir).await;
        write(&dir.join("slapd.conf"), &slapd_conf(&dir));

        let (offline, online) = split_groups(ldif);
        write(
            &dir.join("preload.ldif"),
            &format!("{BASE_LDIF}\n{offline}"),
        );
        let out = Command::new(sbin("slapadd"))
            .arg("-q")
            .arg("-f")
            .arg(dir.join("slapd.conf"))
            .arg("-l")
            .arg(dir.join("preload.ldif"))
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .unwrap_or_else(|e| panic!("cannot run slapadd ({e}): install slapd (scripts/test)"));
        check(&out, "slapadd of the base entries and preload", "");
        let _ = std::fs::remove_file(dir.join("preload.ldif"));

        for attempt in 1..=START_ATTEMPTS {
            let (ldap_port, ldaps_port) = free_ports();
            slapd.ldap_port = ldap_port;
            slapd.ldaps_port = ldaps_port;
            let log_start = slapd.log().len();
            let child = slapd.spawn(debug.as_deref().unwrap_or("none"));
            slapd.child = Some(child);
            match slapd.wait_ready(log_start).await {
                Ok(()) => break,
                Err(log) if attempt < START_ATTEMPTS => {
                    eprintln!("slapd: ports {ldap_port}/{ldaps_port} taken, retrying\n{log}");
                }
                Err(log) => {
                    panic!("slapd could not bind free ports {START_ATTEMPTS} times:\n{log}")
                }
            }
        }
        eprintln!(
            "slapd: {} and {} ready in {} ms",
            slapd.ldap_url(),
            slapd.ldaps_url(),
            started.elapsed().as_millis()
        );
        if !online.is_empty() {
            slapd.add(&online).await;
        }
        slapd
    }

    fn spawn(&self, debug: &str) -> Child {
        let slapd = sbin("slapd");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("slapd.log"))
            .expect("open slapd.log");
        let _ = std::fs::remove_file(self.dir.join("slapd.pid"));
        // setpriv --pdeathsig: slapd dies with the thread that started it even if the test
        // process is killed before Drop runs (nextest also kills the test's process group).
        let mut cmd = if Path::new("/usr/bin/setpriv").exists() {
            let mut cmd = std::process::Command::new("/usr/bin/setpriv");
            cmd.args(["--pdeathsig", "KILL", "--"]).arg(&slapd);
            cmd
        } else {
            std::process::Command::new(&slapd)
        };
        cmd.args(["-d", debug, "-f"])
            .arg(self.dir.join("slapd.conf"))
            .arg("-h")
            .arg(format!(
                "ldap://127.0.0.1:{}/ ldaps://127.0.0.1:{}/",
                self.ldap_port, self.ldaps_port
            ))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the slapd.log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {} ({e}): install slapd (scripts/test)",
                    slapd.display()
                )
            })
    }

    /// Ok once our slapd has bound both ports (its pidfile is written after binding) and accepts
    /// connections; Err(log) if it exited because a port was taken meanwhile. Panics otherwise.
    async fn wait_ready(&mut self, log_start: usize) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let pid = self.pid().expect("slapd was spawned").to_string();
        loop {
            let child = self.child.as_mut().expect("slapd was spawned");
            if let Some(status) = child.try_wait().expect("poll slapd") {
                self.child = None;
                let log = self.log();
                if log
                    .get(log_start..)
                    .unwrap_or("")
                    .contains("Address already in use")
                {
                    return Err(log);
                }
                panic!("slapd exited during startup ({status}):\n{log}");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                self.child = None;
                panic!(
                    "slapd did not accept connections within {READY_TIMEOUT:?}:\n{}",
                    self.log()
                );
            }
            let pidfile = std::fs::read_to_string(self.dir.join("slapd.pid")).unwrap_or_default();
            if pidfile.trim() == pid
                && tokio::net::TcpStream::connect(("127.0.0.1", self.ldap_port))
                    .await
                    .is_ok()
                && tokio::net::TcpStream::connect(("127.0.0.1", self.ldaps_port))
                    .await
                    .is_ok()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// `ldap://127.0.0.1:PORT` (StartTLS available).
    pub fn ldap_url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.ldap_port)
    }

    /// `ldaps://127.0.0.1:PORT`.
    pub fn ldaps_url(&self) -> String {
        format!("ldaps://127.0.0.1:{}", self.ldaps_port)
    }

    pub fn ldap_port(&self) -> u16 {
        self.ldap_port
    }

    pub fn ldaps_port(&self) -> u16 {
        self.ldaps_port
    }

    /// PEM of the CA that signed the server certificate (SAN IP:127.0.0.1, DNS:localhost).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The CA certificate's PEM text.
    pub fn ca_pem(&self) -> String {
        std::fs::read_to_string(self.ca_file()).expect("read ca.pem")
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// slapd's process id (None after `stop`).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// What slapd wrote to stderr (errors only, unless ROSTERD_TEST_SLAPD_DEBUG is set).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("slapd.log")).unwrap_or_default()
    }

    /// An OpenLDAP client tool (`ldapsearch`, `ldapwhoami`, ...) with /etc/ldap/ldap.conf ignored
    /// and TLS trusting exactly this server's CA; add `-x -H URL [-ZZ] -D .. -w ..` yourself.
    pub fn cli(&self, tool: &str) -> Command {
        let mut cmd = Command::new(tool);
        cmd.env("LDAPCONF", "/dev/null")
            .env("LDAPTLS_CACERT", self.ca_file())
            .env("LDAPTLS_REQCERT", "demand")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    fn admin_cli(&self, tool: &str) -> Command {
        let mut cmd = self.cli(tool);
        cmd.args([
            "-x",
            "-ZZ",
            "-H",
            &self.ldap_url(),
            "-D",
            ADMIN_DN,
            "-w",
            ADMIN_PASSWORD,
        ]);
        cmd
    }

    /// `ldapadd` as the rootdn; panics with the tool's stderr on failure.
    pub async fn add(&self, ldif: &str) {
        self.ldif_tool("ldapadd", ldif).await;
    }

    /// `ldapmodify` as the rootdn (records need `changetype:`); panics on failure.
    pub async fn modify(&self, ldif: &str) {
        self.ldif_tool("ldapmodify", ldif).await;
    }

    /// `ldapdelete` of one entry as the rootdn; panics on failure.
    pub async fn delete(&self, dn: &str) {
        let out = self
            .admin_cli("ldapdelete")
            .arg(dn)
            .output()
            .await
            .expect("run ldapdelete");
        check(&out, &format!("ldapdelete {dn}"), &self.log());
    }

    /// `ldapsearch -LLL` (no line wrapping) as the rootdn: the entries as LDIF. Panics on
    /// failure, including a missing base.
    pub async fn search(&self, base: &str, filter: &str, attrs: &[&str]) -> String {
        let out = self
            .admin_cli("ldapsearch")
            .args(["-LLL", "-o", "ldif-wrap=no", "-b", base, filter])
            .args(attrs)
            .output()
            .await
            .expect("run ldapsearch");
        check(&out, &format!("ldapsearch -b {base} {filter}"), &self.log());
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    async fn ldif_tool(&self, tool: &str, ldif: &str) {
        let n = self.files.fetch_add(1, Ordering::Relaxed);
        let file = self.dir.join(format!("{tool}-{n}.ldif"));
        tokio::fs::write(&file, ldif)
            .await
            .expect("write the LDIF file");
        let out = self
            .admin_cli(tool)
            .arg("-f")
            .arg(&file)
            .output()
            .await
            .expect("run the LDAP tool");
        check(&out, tool, &self.log());
        let _ = tokio::fs::remove_file(&file).await;
    }

    /// Kills slapd and waits for it without blocking the runtime, then removes the directory.
    pub async fn stop(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            while child.try_wait().ok().flatten().is_none() {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

// --- directory data --------------------------------------------------------------------------

pub fn user_dn(i: usize) -> String {
    format!("uid=user{i},{PEOPLE}")
}

pub fn group_dn(cn: &str) -> String {
    format!("cn={cn},{GROUPS}")
}

/// `user{i}@example.org` (mail).
pub fn user_mail(i: usize) -> String {
    format!("user{i}@example.org")
}

/// `user{i}@corp.example.org` (userPrincipalName, deliberately not the mail address).
pub fn user_upn(i: usize) -> String {
    format!("user{i}@corp.example.org")
}

/// The objectGUID of user i as stored (AD byte order): the first field little-endian i, the
/// second and third 0xad12 and 0x4c34 little-endian, then 9a 5e and i as 6 big-endian bytes.
pub fn guid_bytes(i: usize) -> [u8; 16] {
    let i = i as u64;
    let mut b = [0u8; 16];
    b[0..4].copy_from_slice(&(i as u32).to_le_bytes());
    b[4..6].copy_from_slice(&0xad12u16.to_le_bytes());
    b[6..8].copy_from_slice(&0x4c34u16.to_le_bytes());
    b[8] = 0x9a;
    b[9] = 0x5e;
    b[10..16].copy_from_slice(&i.to_be_bytes()[2..8]);
    b
}

/// The canonical GUID string for user i, as AD tools show it:
/// `{i:08x}-ad12-4c34-9a5e-{i:012x}` (reading the bytes big-endian would give `..-12ad-344c-..`).
pub fn user_guid(i: usize) -> String {
    uuid::Uuid::from_bytes_le(guid_bytes(i)).to_string()
}

/// One user `uid=user{i},ou=people,dc=example,dc=org` (inetOrgPerson + adUser): uid and
/// sAMAccountName `user{i}`, givenName `Given{i}`, sn `Family{i}`, cn and displayName
/// `Given{i} Family{i}`, mail `user_mail(i)`, userPrincipalName `user_upn(i)`, the given
/// userAccountControl and objectGUID `guid_bytes(i)`.
pub fn user_ldif_with_uac(i: usize, uac: u32) -> String {
    let guid = base64::engine::general_purpose::STANDARD.encode(guid_bytes(i));
    format!(
        "dn: uid=user{i},{PEOPLE}\n\
         objectClass: inetOrgPerson\n\
         objectClass: adUser\n\
         uid: user{i}\n\
         cn: Given{i} Family{i}\n\
         sn: Family{i}\n\
         givenName: Given{i}\n\
         displayName: Given{i} Family{i}\n\
         mail: user{i}@example.org\n\
         sAMAccountName: user{i}\n\
         userPrincipalName: user{i}@corp.example.org\n\
         userAccountControl: {uac}\n\
         objectGUID:: {guid}\n\n"
    )
}

/// An enabled user (userAccountControl 512), see `user_ldif_with_uac`.
pub fn user_ldif(i: usize) -> String {
    user_ldif_with_uac(i, UAC_ENABLED)
}

/// A disabled user (userAccountControl 514).
pub fn disabled_user_ldif(i: usize) -> String {
    user_ldif_with_uac(i, UAC_DISABLED)
}

/// Enabled users for every i in `range`.
pub fn users_ldif(range: Range<usize>) -> String {
    let mut out = String::with_capacity(range.len() * 420);
    for i in range {
        out.push_str(&user_ldif(i));
    }
    out
}

/// `cn={cn},ou=groups,dc=example,dc=org`, a groupOfNames whose members are the given users.
/// groupOfNames needs at least one member.
pub fn group_ldif(cn: &str, members: &[usize]) -> String {
    let dns: Vec<String> = members.iter().map(|&i| user_dn(i)).collect();
    group_ldif_dns(cn, &dns)
}

/// A groupOfNames with arbitrary member DNs (other groups, for nesting).
pub fn group_ldif_dns(cn: &str, member_dns: &[String]) -> String {
    assert!(
        !member_dns.is_empty(),
        "groupOfNames {cn} needs at least one member"
    );
    let mut out = format!(
        "dn: {}\nobjectClass: groupOfNames\ncn: {cn}\n",
        group_dn(cn)
    );
    for dn in member_dns {
        let _ = writeln!(out, "member: {dn}");
    }
    out.push('\n');
    out
}

/// For `modify`: sets user i's userAccountControl (UAC_DISABLED disables, UAC_ENABLED enables).
pub fn set_uac_ldif(i: usize, uac: u32) -> String {
    format!(
        "dn: {}\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: {uac}\n\n",
        user_dn(i)
    )
}

/// For `modify`: adds users to group `cn`.
pub fn add_members_ldif(cn: &str, members: &[usize]) -> String {
    members_ldif(cn, "add", members)
}

/// For `modify`: removes users from group `cn` (not the last one: groupOfNames needs a member).
pub fn remove_members_ldif(cn: &str, members: &[usize]) -> String {
    members_ldif(cn, "delete", members)
}

fn members_ldif(cn: &str, op: &str, members: &[usize]) -> String {
    let mut out = format!("dn: {}\nchangetype: modify\n{op}: member\n", group_dn(cn));
    for &i in members {
        let _ = writeln!(out, "member: {}", user_dn(i));
    }
    out.push_str("-\n\n");
    out
}

const BASE_LDIF: &str = "\
dn: dc=example,dc=org
objectClass: dcObject
objectClass: organization
dc: example
o: Example Org

dn: ou=people,dc=example,dc=org
objectClass: organizationalUnit
ou: people

dn: ou=groups,dc=example,dc=org
objectClass: organizationalUnit
ou: groups

dn: cn=rosterd,dc=example,dc=org
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: rosterd
description: rosterd's read-only service account
userPassword: reader-secret
";

/// Splits LDIF records into those slapadd can load (no `member` values) and groups.
fn split_groups(ldif: &str) -> (String, String) {
    let (mut plain, mut groups) = (String::new(), String::new());
    let mut record: Vec<&str> = Vec::new();
    let mut flush = |record: &mut Vec<&str>| {
        if record.iter().all(|l| l.starts_with('#')) {
            record.clear();
            return;
        }
        let is_group = record.iter().any(|l| {
            l.split_once(':')
                .is_some_and(|(attr, _)| attr.eq_ignore_ascii_case("member"))
        });
        let out = if is_group { &mut groups } else { &mut plain };
        for line in record.drain(..) {
            out.push_str(line);
            out.push('\n');
        }
        out.push('\n');
    };
    for line in ldif.lines() {
        if line.trim().is_empty() {
            flush(&mut record);
        } else if !line.starts_with("version:") {
            record.push(line);
        }
    }
    flush(&mut record);
    (plain, groups)
}

// --- server setup ----------------------------------------------------------------------------

/// `<tmp>/rosterd-slapd-<pid>-<n>-<nanos>` (`rosterd-slapd-debug-...` when kept for debugging).
/// Also removes the directories of test processes that died before dropping their Slapd.
fn unique_dir(keep: bool) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let tmp = std::env::temp_dir();
    for entry in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let pid = name
            .to_str()
            .and_then(|n| n.strip_prefix("rosterd-slapd-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        if pid.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    tmp.join(format!(
        "rosterd-slapd-{}{}-{}-{nanos:08x}",
        if keep { "debug-" } else { "" },
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Two distinct free loopback ports (both bound at once, then released for slapd).
fn free_ports() -> (u16, u16) {
    let a = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let b = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    (
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    )
}

/// slapd and slapadd live in /usr/sbin, which is not on a non-root user's PATH on Debian.
fn sbin(name: &str) -> PathBuf {
    let path = Path::new("/usr/sbin").join(name);
    if path.exists() {
        path
    } else {
        PathBuf::from(name)
    }
}

fn write(path: &Path, contents: &str) {
    std::fs::write(path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

fn check(out: &Output, what: &str, log: &str) {
    if !out.status.success() {
        panic!(
            "{what} failed ({}):\n{}{}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            last_lines(&String::from_utf8_lossy(&out.stdout), 5),
            if log.is_empty() {
                String::new()
            } else {
                format!("\n--- slapd log ---\n{log}")
            }
        );
    }
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

const OPENSSL_CNF: &str = "\
[req]
distinguished_name = dn
prompt = no
[dn]
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
";

/// A P-256 CA (ca.pem, ca.key) and server certificate (server.pem, server.key) valid for a week.
pub async fn make_certificates(dir: &Path) {
    write(&dir.join("openssl.cnf"), OPENSSL_CNF);
    let steps: [&[&str]; 3] = [
        &[
            "req",
            "-x509",
            "-config",
            "openssl.cnf",
            "-extensions",
            "ca",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "7",
            "-subj",
            "/CN=rosterd test CA",
        ],
        &[
            "req",
            "-new",
            "-config",
            "openssl.cnf",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "7",
            "-extfile",
            "openssl.cnf",
            "-extensions",
            "server",
            "-out",
            "server.pem",
        ],
    ];
    for args in steps {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .unwrap_or_else(|e| panic!("cannot run openssl ({e}): install openssl"));
        check(&out, &format!("openssl {}", args.join(" ")), "");
    }
}

/// Static configuration; see the module documentation for the reasoning.
fn slapd_conf(dir: &Path) -> String {
    let d = dir.display();
    format!(
        r#"# Generated by tests/api/slapd.rs
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
include "{d}/adlite.schema"

modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
moduleload syncprov

pidfile "{d}/slapd.pid"

TLSCACertificateFile "{d}/ca.pem"
TLSCertificateFile "{d}/server.pem"
TLSCertificateKeyFile "{d}/server.key"
# Like a domain controller that requires signing: a simple bind with a password needs TLS
# (StartTLS or LDAPS); over plain LDAP it gets confidentialityRequired (13).
security simple_bind=128

# Frontend (root DSE, schema): anonymous may read the root DSE only.
access to dn.base="" by * read
access to dn.base="cn=Subschema" by users read by * none

database mdb
suffix "{BASE}"
rootdn "{ADMIN_DN}"
rootpw {ADMIN_PASSWORD}
directory "{d}/db"
# Sparse: the file only takes what is used (~20 MB for 12 000 users).
maxsize 1073741824
dbnosync
index objectClass eq
index uid,cn,mail,sAMAccountName,userPrincipalName eq
index entryUUID,entryCSN,objectGUID eq
index member,memberOf eq

# Like AD's MaxPageSize: at most 1000 entries without paging, pages of at most 1000, any total.
limits dn.exact="{BIND_DN}" size.soft={MAX_PAGE_SIZE} size.hard={MAX_PAGE_SIZE} size.pr={MAX_PAGE_SIZE} size.prtotal=unlimited

access to attrs=userPassword
    by anonymous auth
    by * none
access to dn.subtree="{BASE}"
    by dn.exact="{BIND_DN}" read
    by * none

# Maintains memberOf on groupOfNames members; refint drops deleted/renamed members from groups.
overlay memberof
memberof-refint TRUE
# RFC 4533 content synchronisation (contextCSN, sync cookies) for incremental reads.
overlay syncprov
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr_values<'a>(ldif: &'a str, attr: &str) -> Vec<&'a str> {
        ldif.lines()
            .filter_map(|l| l.split_once(": "))
            .filter(|(a, _)| a.trim_end_matches(':').eq_ignore_ascii_case(attr))
            .map(|(_, v)| v)
            .collect()
    }

    async fn ldapsearch(slapd: &Slapd, url: &str, starttls: bool, args: &[&str]) -> (i32, String) {
        let mut cmd = slapd.cli("ldapsearch");
        cmd.args(["-x", "-H", url, "-D", BIND_DN, "-w", BIND_PASSWORD, "-LLL"])
            .args(["-o", "ldif-wrap=no"]);
        if starttls {
            cmd.arg("-ZZ");
        }
        let out = cmd.args(args).output().await.expect("run ldapsearch");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let code = out.status.code().unwrap_or(-1);
        if code != 0 && code != 4 {
            panic!(
                "ldapsearch {args:?} on {url}: exit {code}\n{}\n--- slapd log ---\n{}",
                String::from_utf8_lossy(&out.stderr),
                slapd.log()
            );
        }
        (code, stdout)
    }

    #[test]
    fn guids_use_microsoft_byte_order() {
        assert_eq!(
            guid_bytes(1),
            [
                0x01, 0, 0, 0, 0x12, 0xad, 0x34, 0x4c, 0x9a, 0x5e, 0, 0, 0, 0, 0, 0x01
            ]
        );
        assert_eq!(user_guid(1), "00000001-ad12-4c34-9a5e-000000000001");
        assert_eq!(user_guid(12345), "00003039-ad12-4c34-9a5e-000000003039");
        let sample = [
            0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
            0xee, 0x01,
        ];
        assert_eq!(
            uuid::Uuid::from_bytes_le(sample).to_string(),
            "33221100-5544-7766-8899-aabbccddee01"
        );
    }

    #[test]
    fn preload_defers_groups() {
        let ldif = format!("version: 1\n{}{}", user_ldif(1), group_ldif("staff", &[1]));
        let (plain, groups) = split_groups(&ldif);
        assert!(
            plain.starts_with("dn: uid=user1,") && !plain.contains("member"),
            "{plain}"
        );
        assert!(groups.starts_with("dn: cn=staff,") && groups.contains("member: uid=user1,"));
    }

    #[tokio::test]
    async fn slapd_starts_serves_tls_and_pages() {
        let t = Instant::now();
        let mut ldif = users_ldif(0..12_000);
        ldif.push_str(&group_ldif("staff", &[1, 2]));
        let slapd = Slapd::start_with(&ldif).await;
        eprintln!(
            "start_with 12 000 users + 1 group: {} ms",
            t.elapsed().as_millis()
        );

        let t = Instant::now();
        slapd.add(&users_ldif(20_000..20_003)).await;
        slapd.add(&disabled_user_ldif(20_003)).await;
        slapd.modify(&add_members_ldif("staff", &[20_003])).await;
        slapd.modify(&set_uac_ldif(2, UAC_DISABLED)).await;
        eprintln!("4 adds/modifies: {} ms", t.elapsed().as_millis());

        // StartTLS: the GUID, entryUUID and memberOf of a group member.
        let want_attrs = [
            "objectGUID",
            "entryUUID",
            "memberOf",
            "mail",
            "userPrincipalName",
        ];
        for (url, starttls) in [(slapd.ldap_url(), true), (slapd.ldaps_url(), false)] {
            let dn = user_dn(20_003);
            let mut args = vec!["-b", dn.as_str(), "-s", "base"];
            args.extend(want_attrs);
            let (code, out) = ldapsearch(&slapd, &url, starttls, &args).await;
            assert_eq!(code, 0, "{out}");
            let guid = attr_values(&out, "objectGUID");
            assert!(
                out.contains("objectGUID:: ") && guid.len() == 1,
                "base64 in LDIF: {out}"
            );
            let guid = base64::engine::general_purpose::STANDARD
                .decode(guid[0])
                .unwrap();
            assert_eq!(guid, guid_bytes(20_003));
            assert_eq!(attr_values(&out, "memberOf"), [group_dn("staff")], "{out}");
            assert_eq!(attr_values(&out, "entryUUID").len(), 1, "{out}");
            assert_eq!(attr_values(&out, "mail"), [user_mail(20_003)]);
            assert_eq!(attr_values(&out, "userPrincipalName"), [user_upn(20_003)]);
        }

        // memberOf from the preloaded group (added over LDAP after slapadd).
        let (_, out) = ldapsearch(
            &slapd,
            &slapd.ldaps_url(),
            false,
            &[
                "-b",
                PEOPLE,
                &format!("(memberOf={})", group_dn("staff")),
                "uid",
            ],
        )
        .await;
        let mut members = attr_values(&out, "uid");
        members.sort();
        assert_eq!(members, ["user1", "user2", "user20003"]);

        // AD's bitwise filter: exactly the two disabled users.
        let (_, out) = ldapsearch(
            &slapd,
            &slapd.ldap_url(),
            true,
            &[
                "-b",
                PEOPLE,
                "(userAccountControl:1.2.840.113556.1.4.803:=2)",
                "uid",
            ],
        )
        .await;
        let mut disabled = attr_values(&out, "uid");
        disabled.sort();
        assert_eq!(disabled, ["user2", "user20003"]);

        // Paged: everything; not paged: sizeLimitExceeded after 1000 entries.
        let t = Instant::now();
        let (code, out) = ldapsearch(
            &slapd,
            &slapd.ldap_url(),
            true,
            &[
                "-E",
                "pr=500/noprompt",
                "-b",
                PEOPLE,
                "(objectClass=inetOrgPerson)",
                "1.1",
            ],
        )
        .await;
        assert_eq!(code, 0);
        assert_eq!(
            out.lines().filter(|l| l.starts_with("dn: ")).count(),
            12_004
        );
        eprintln!(
            "paged search of 12 004 entries over StartTLS: {} ms",
            t.elapsed().as_millis()
        );
        let (code, out) = ldapsearch(
            &slapd,
            &slapd.ldap_url(),
            true,
            &["-b", PEOPLE, "(uid=*)", "1.1"],
        )
        .await;
        assert_eq!(code, 4, "sizeLimitExceeded");
        assert_eq!(
            out.lines().filter(|l| l.starts_with("dn: ")).count(),
            MAX_PAGE_SIZE
        );

        // Anonymous: the root DSE, nothing else.
        let out = slapd
            .cli("ldapsearch")
            .args([
                "-x",
                "-H",
                &slapd.ldap_url(),
                "-LLL",
                "-b",
                PEOPLE,
                "(uid=user1)",
                "1.1",
            ])
            .output()
            .await
            .unwrap();
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("dn:"),
            "anonymous reads people"
        );
        let out = slapd
            .cli("ldapsearch")
            .args([
                "-x",
                "-H",
                &slapd.ldap_url(),
                "-LLL",
                "-b",
                "",
                "-s",
                "base",
                "namingContexts",
            ])
            .output()
            .await
            .unwrap();
        assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("namingContexts: {BASE}")));

        // memberof-refint: a deleted user leaves the group.
        slapd.delete(&user_dn(1)).await;
        let group = slapd
            .search(&group_dn("staff"), "(objectClass=*)", &["member"])
            .await;
        assert!(
            !group.contains(&user_dn(1)) && group.contains(&user_dn(2)),
            "{group}"
        );

        // Drop kills and reaps slapd and removes its directory.
        let pid = slapd.pid().unwrap();
        let dir = slapd.dir().to_path_buf();
        drop(slapd);
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "slapd {pid} still exists"
        );
        assert!(!dir.exists());
    }
}

//! Every config validation site, tested in-process: one case per site, with the smallest YAML that
//! triggers it, checked by error variant, field path and position (never by message text). The CLI
//! tests (`tests/cli.rs`) keep only the binary's contract: exit codes and one `file:line:col` line.

use std::path::{Path, PathBuf};

use super::load::{ConfigError, load, parse};

/// The config path handed to [`parse`]; parsing does no I/O, so it need not exist.
const FILE: &str = "/etc/vpcguard/vpcguard.yaml";

/// What [`parse`] said, without its human text.
#[derive(Debug, PartialEq, Eq)]
enum Want {
    /// Accepted.
    Ok,
    /// Rejected while deserializing (YAML syntax, unknown key, wrong type, missing key, bad
    /// duration or address): `ConfigError::Syntax` records only a line and column.
    Syntax(u32, u32),
    /// Rejected by `model.rs`: the field path and the position (`None` = no position).
    Invalid(&'static str, Option<(u32, u32)>),
    /// Rejected as an empty document (`ConfigError::Empty`, no position).
    Empty,
}

fn parse_outcome(yaml: &str) -> Want {
    match parse(yaml, Path::new(FILE)) {
        Ok(_) => Want::Ok,
        Err(ConfigError::Syntax {
            path, line, column, ..
        }) => {
            assert_eq!(path, Path::new(FILE));
            Want::Syntax(line, column)
        }
        Err(ConfigError::Invalid { path, invalid }) => {
            assert_eq!(path, Path::new(FILE));
            Want::Invalid(invalid.field, invalid.pos)
        }
        Err(ConfigError::Empty { path }) => {
            assert_eq!(path, Path::new(FILE));
            Want::Empty
        }
        Err(other) => panic!("parse does no I/O, yet returned {other:?}"),
    }
}

#[test]
fn parse_rejects_each_invalid_value_at_its_field_and_position() {
    use Want::{Empty, Invalid, Ok, Syntax};
    const CASES: &[(&str, &str, Want)] = &[
        // --- the document itself (docs/contract.md §2: an empty file, or one that is not a
        // mapping, is invalid; `{}` is the file that takes every default) ---
        ("empty mapping takes every default", "{}\n", Ok),
        ("empty file", "", Empty),
        ("only blank lines", "\n  \n", Empty),
        ("only a comment", "# all defaults\n", Empty),
        ("only a document marker", "---\n", Empty),
        ("null document", "~\n", Empty),
        ("a sequence, not a mapping", "- listen: {}\n", Syntax(1, 1)),
        ("a scalar, not a mapping", "listen\n", Syntax(1, 1)),
        // --- serde-saphyr, through load::syntax ---
        (
            "yaml syntax: unclosed flow sequence",
            "listen: [\n",
            Syntax(1, 9),
        ),
        ("unknown key: top level", "lisen: {}\n", Syntax(1, 1)),
        (
            "unknown key: listen",
            "listen:\n  adress: x\n",
            Syntax(2, 3),
        ),
        (
            "unknown key: listen.tls",
            "listen:\n  tls:\n    crt: a.pem\n",
            Syntax(3, 5),
        ),
        ("unknown key: admin", "admin:\n  tokenz: []\n", Syntax(2, 3)),
        (
            "unknown key: admin.tokens[]",
            "admin:\n  tokens:\n    - name: a\n      secret: s\n",
            Syntax(4, 7),
        ),
        (
            "unknown key: upstream",
            "upstream:\n  uri: x\n",
            Syntax(2, 3),
        ),
        (
            "unknown key: client_ip",
            "client_ip:\n  header: []\n",
            Syntax(2, 3),
        ),
        ("unknown key: vpcep", "vpcep:\n  header: []\n", Syntax(2, 3)),
        (
            "unknown key: vpcep.tlv[]",
            "vpcep:\n  tlv:\n    - kind: aws\n      typ: 1\n",
            Syntax(4, 7),
        ),
        (
            "unknown key: policy",
            "policy:\n  file: p.yaml\n",
            Syntax(2, 3),
        ),
        (
            "unknown key: routes[]",
            "routes:\n  - right: view\n    method: [GET]\n",
            Syntax(3, 5),
        ),
        (
            "unknown key: limits",
            "limits:\n  max_conns: 1\n",
            Syntax(2, 3),
        ),
        ("unknown key: log", "log:\n  fmt: json\n", Syntax(2, 3)),
        (
            "unknown tenant rule",
            "tenant:\n  - cookie: x\n",
            Syntax(2, 5),
        ),
        // A missing key is reported at the last key serde-saphyr read in that mapping (here
        // `role`, `type`, `path`), not at the mapping itself.
        (
            "missing key: admin.tokens[].hash",
            "admin:\n  tokens:\n    - { name: a, role: read }\n",
            Syntax(3, 18),
        ),
        (
            "missing key: vpcep.tlv[].kind",
            "vpcep:\n  tlv:\n    - { type: 224 }\n",
            Syntax(3, 9),
        ),
        (
            "missing key: routes[].right",
            "routes:\n  - { path: /x }\n",
            Syntax(2, 7),
        ),
        ("not a bool", "identity_headers: maybe\n", Syntax(1, 19)),
        (
            "not an integer",
            "limits:\n  max_connections: many\n",
            Syntax(2, 20),
        ),
        (
            "byte size with a unit (sizes are plain integers)",
            "limits:\n  max_header_bytes: 64KiB\n",
            Syntax(2, 21),
        ),
        (
            "integer out of range: vpcep.tlv[].type",
            "vpcep:\n  tlv:\n    - kind: custom\n      type: 300\n",
            Syntax(4, 13),
        ),
        (
            "enum: listen.tls.min_version",
            "listen:\n  tls:\n    min_version: \"1.1\"\n",
            Syntax(3, 18),
        ),
        (
            "enum: listen.proxy_protocol",
            "listen:\n  proxy_protocol: on\n",
            Syntax(2, 19),
        ),
        (
            "enum: admin.tokens[].role",
            "admin:\n  tokens:\n    - name: a\n      hash: h\n      role: admin\n",
            Syntax(5, 13),
        ),
        (
            "enum: vpcep.tlv[].kind",
            "vpcep:\n  tlv:\n    - kind: ibm\n",
            Syntax(3, 13),
        ),
        (
            "enum: vpcep.tlv[].encoding",
            "vpcep:\n  tlv:\n    - kind: custom\n      encoding: utf8\n",
            Syntax(4, 17),
        ),
        (
            "enum: vpcep.tlv[].yields",
            "vpcep:\n  tlv:\n    - kind: custom\n      yields: tenant\n",
            Syntax(4, 15),
        ),
        (
            "enum: policy.unknown_tenant",
            "policy:\n  unknown_tenant: ignore\n",
            Syntax(2, 19),
        ),
        (
            "enum: policy.mode",
            "policy:\n  mode: audit\n",
            Syntax(2, 9),
        ),
        ("enum: log.format", "log:\n  format: xml\n", Syntax(2, 11)),
        (
            "duration without a unit",
            "limits:\n  keepalive_timeout: 10\n",
            Syntax(2, 22),
        ),
        (
            "duration over 365 days",
            "limits:\n  keepalive_timeout: 99999999999999h\n",
            Syntax(2, 22),
        ),
        (
            "duration whose number overflows",
            "upstream:\n  idle_timeout: 99999999999999999999999s\n",
            Syntax(2, 17),
        ),
        (
            "duration with an unknown unit",
            "upstream:\n  connect_timeout: 10x\n",
            Syntax(2, 20),
        ),
        (
            "address: listen.address",
            "listen:\n  address: nope\n",
            Syntax(2, 12),
        ),
        (
            "address: admin.address without a port",
            "admin:\n  address: \"127.0.0.1\"\n",
            Syntax(2, 12),
        ),
        // --- model.rs ---
        (
            "admin.address equals listen.address",
            "listen:\n  address: \"127.0.0.1:9000\"\nadmin:\n  address: \"127.0.0.1:9000\"\n",
            Invalid("admin.address", None),
        ),
        (
            "self_check_path without a leading slash",
            "self_check_path: health\n",
            Invalid("self_check_path", Some((1, 18))),
        ),
        (
            "listen.tls with cert but no key",
            "listen:\n  tls:\n    cert: a.pem\n",
            Invalid("listen.tls", Some((3, 5))),
        ),
        (
            "not a CIDR: listen.proxy_protocol_from",
            "listen:\n  proxy_protocol_from: [nope]\n",
            Invalid("listen.proxy_protocol_from", Some((2, 25))),
        ),
        (
            "CIDR with host bits: client_ip.trusted_proxies",
            "client_ip:\n  trusted_proxies: [\"10.0.0.1/8\"]\n",
            Invalid("client_ip.trusted_proxies", Some((2, 21))),
        ),
        (
            "admin token hash not sha256:<64 hex>",
            "admin:\n  tokens:\n    - { name: a, hash: \"sha256:00\", role: read }\n",
            Invalid("admin.tokens", Some((3, 7))),
        ),
        (
            "upstream.url does not parse",
            "upstream:\n  url: \"http://a b\"\n",
            Invalid("upstream.url", Some((2, 8))),
        ),
        (
            "upstream.url scheme",
            "upstream:\n  url: \"ftp://x\"\n",
            Invalid("upstream.url", Some((2, 8))),
        ),
        (
            "upstream.tls on an http:// upstream",
            "upstream:\n  url: \"http://a:1\"\n  tls: { ca: ca.pem }\n",
            Invalid("upstream.tls", Some((2, 8))),
        ),
        (
            "upstream.tls cert without key",
            "upstream:\n  url: \"https://a:1\"\n  tls: { cert: c.pem }\n",
            Invalid("upstream.tls", None),
        ),
        (
            "upstream.tls ca on https://",
            "upstream:\n  url: \"https://a:1\"\n  tls: { ca: ca.pem }\n",
            Ok,
        ),
        (
            "unknown key: upstream.tls",
            "upstream:\n  url: \"https://a:1\"\n  tls:\n    cafile: x\n",
            Syntax(4, 5),
        ),
        (
            "upstream.url with a path",
            "upstream:\n  url: \"http://x/api\"\n",
            Invalid("upstream.url", Some((2, 8))),
        ),
        (
            "listen.backlog 0",
            "listen:\n  backlog: 0\n",
            Invalid("listen.backlog", Some((2, 12))),
        ),
        (
            "limits.max_concurrent_streams 0",
            "limits:\n  max_concurrent_streams: 0\n",
            Invalid("limits.max_concurrent_streams", Some((2, 27))),
        ),
        (
            "limits.stream_idle_timeout 0",
            "limits:\n  stream_idle_timeout: \"0\"\n",
            Invalid("limits.stream_idle_timeout", Some((2, 24))),
        ),
        (
            "limits.stream_idle_timeout not a duration",
            "limits:\n  stream_idle_timeout: 5\n",
            Syntax(2, 24),
        ),
        (
            "upstream.max_connections 0",
            "upstream:\n  max_connections: 0\n",
            Invalid("upstream.max_connections", Some((2, 20))),
        ),
        (
            "header name: vpcep.headers",
            "vpcep:\n  headers: [\"x vpcep\"]\n",
            Invalid("vpcep.headers", Some((2, 13))),
        ),
        (
            "header name: vpcep.marker_headers",
            "vpcep:\n  marker_headers: [\"a:b\"]\n",
            Invalid("vpcep.marker_headers", Some((2, 20))),
        ),
        (
            "client_ip.headers not a forwarding header",
            "client_ip:\n  headers: [x-client-ip]\n",
            Invalid("client_ip.headers", Some((2, 13))),
        ),
        (
            "custom TLV without type, encoding and yields",
            "vpcep:\n  tlv:\n    - { kind: custom }\n",
            Invalid("vpcep.tlv", Some((3, 7))),
        ),
        (
            "custom TLV type outside 0xE0..=0xEF",
            "vpcep:\n  tlv:\n    - { kind: custom, type: 1, encoding: ascii, yields: marker }\n",
            Invalid("vpcep.tlv", Some((3, 7))),
        ),
        (
            "vendor TLV with a fixed field set",
            "vpcep:\n  tlv:\n    - { kind: aws, subtype: 1 }\n",
            Invalid("vpcep.tlv", Some((3, 7))),
        ),
        (
            "tenant header name",
            "tenant:\n  - header: \"x y\"\n",
            Invalid("tenant", Some((2, 5))),
        ),
        (
            "tenant host pattern",
            "tenant:\n  - host: \"{x}.example.com\"\n",
            Invalid("tenant", Some((2, 5))),
        ),
        (
            "tenant path pattern",
            "tenant:\n  - path: no-slash\n",
            Invalid("tenant", Some((2, 5))),
        ),
        (
            "tenant static empty",
            "tenant:\n  - static: \"\"\n",
            Invalid("tenant", Some((2, 5))),
        ),
        (
            "route right",
            "routes:\n  - { right: delete }\n",
            Invalid("routes", Some((2, 5))),
        ),
        (
            "route path pattern",
            "routes:\n  - { path: a, right: view }\n",
            Invalid("routes", Some((2, 5))),
        ),
        (
            "route method",
            "routes:\n  - { methods: [\"GE T\"], right: view }\n",
            Invalid("routes", Some((2, 5))),
        ),
    ];
    for (name, yaml, want) in CASES {
        let got = parse_outcome(yaml);
        assert_eq!(got, *want, "case {name}");
    }
}

/// What [`load`] said about a config directory, without its human text. Paths are relative to the
/// config directory.
#[derive(Debug, PartialEq, Eq)]
enum LoadWant {
    /// Loaded; `true` when a self-signed certificate was generated.
    Ok { self_signed: bool },
    /// `ConfigError::Read` of this file.
    Read(&'static str),
    /// `ConfigError::Policy` of this file: the `PolicyError` variant and its position.
    Policy(&'static str, &'static str, Option<(u32, u32)>),
    /// `ConfigError::Tls` of this file: the `TlsError` variant.
    Tls(&'static str, &'static str),
}

/// The variant name of an error, from its `Debug` form.
fn variant(e: &impl std::fmt::Debug) -> String {
    let debug = format!("{e:?}");
    debug
        .split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn load_outcome(dir: &Path) -> LoadWant {
    let rel = |p: &Path| p.strip_prefix(dir).unwrap().to_str().unwrap().to_owned();
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    match load(&dir.join("vpcguard.yaml")) {
        Ok(loaded) => LoadWant::Ok {
            self_signed: loaded.tls_self_signed,
        },
        Err(ConfigError::Read { path, .. }) => LoadWant::Read(leak(rel(&path))),
        Err(ConfigError::Policy { path, source }) => {
            LoadWant::Policy(leak(rel(&path)), leak(variant(&source)), source.position())
        }
        Err(ConfigError::Tls { path, source }) => {
            LoadWant::Tls(leak(rel(&path)), leak(variant(&source)))
        }
        Err(other) => panic!("not a file error: {other}"),
    }
}

/// (name, config text or `None` for no config file, other files as (name, text), want).
type LoadCase = (
    &'static str,
    Option<&'static str>,
    &'static [(&'static str, &'static str)],
    LoadWant,
);

/// The smallest valid config: an empty mapping, every key at its default (an empty file is invalid).
const MINIMAL: &str = "{}\n";
const OPEN_POLICY: &str = "tenants:\n  - enterprise_id: 389efb76b1354e4482eabeed00000000\n";
const TLS_FILES: &str = "listen:\n  tls: { cert: c.pem, key: k.pem }\n";

#[test]
fn load_reports_the_file_at_fault() {
    use LoadWant::{Ok, Policy, Read, Tls};
    // In file contents, `@cert` and `@key` are a matching PEM pair and `@other-key` is the key of
    // another certificate.
    const CASES: &[LoadCase] = &[
        (
            "defaults with an open policy",
            Some(MINIMAL),
            &[("policy.yaml", OPEN_POLICY)],
            Ok { self_signed: false },
        ),
        ("config file missing", None, &[], Read("vpcguard.yaml")),
        (
            "policy file missing",
            Some(MINIMAL),
            &[],
            Read("policy.yaml"),
        ),
        (
            "policy.path resolved against the config directory",
            Some("policy:\n  path: rules/p.yaml\n"),
            &[],
            Read("rules/p.yaml"),
        ),
        (
            "policy file empty (no position)",
            Some(MINIMAL),
            &[("policy.yaml", "")],
            Policy("policy.yaml", "Empty", None),
        ),
        (
            "policy file invalid, at its own position",
            Some(MINIMAL),
            &[(
                "policy.yaml",
                "tenants:\n  - enterprise_id: 389efb76b1354e4482eabeed00000000\n    trusted_ips:\n      - { id: \"1\", ip_range: \"10.0.0.9-10.0.0.1\", view_flag: 1, download_flag: 0, upload_flag: 0 }\n",
            )],
            Policy("policy.yaml", "InvalidIpRange", Some((4, 30))),
        ),
        (
            "policy over limits.max_vpceps_per_tenant",
            Some("limits:\n  max_vpceps_per_tenant: 1\n"),
            &[(
                "policy.yaml",
                "tenants:\n  - enterprise_id: 389efb76b1354e4482eabeed00000000\n    vpcep:\n      endpoints:\n        - { vpcep_id: aaa }\n        - { vpcep_id: bbb }\n",
            )],
            Policy("policy.yaml", "TooManyEndpoints", Some((6, 23))),
        ),
        (
            "tls: neither file, self-signed",
            Some(TLS_FILES),
            &[("policy.yaml", OPEN_POLICY)],
            Ok { self_signed: true },
        ),
        (
            "tls: one file of two missing",
            Some(TLS_FILES),
            &[("policy.yaml", OPEN_POLICY), ("c.pem", "@cert")],
            Tls("k.pem", "Read"),
        ),
        (
            "tls: cert not PEM",
            Some(TLS_FILES),
            &[
                ("policy.yaml", OPEN_POLICY),
                ("c.pem", "junk"),
                ("k.pem", "@key"),
            ],
            Tls("c.pem", "Cert"),
        ),
        (
            "tls: key not PEM",
            Some(TLS_FILES),
            &[
                ("policy.yaml", OPEN_POLICY),
                ("c.pem", "@cert"),
                ("k.pem", "junk"),
            ],
            Tls("k.pem", "Key"),
        ),
        (
            "tls: key of another certificate",
            Some(TLS_FILES),
            &[
                ("policy.yaml", OPEN_POLICY),
                ("c.pem", "@cert"),
                ("k.pem", "@other-key"),
            ],
            Tls("c.pem", "Mismatch"),
        ),
    ];
    let pair = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert, key, other_key) = (
        pair.cert.pem(),
        pair.signing_key.serialize_pem(),
        other.signing_key.serialize_pem(),
    );
    for (name, config, files, want) in CASES {
        let dir = tempfile::tempdir().unwrap();
        if let Some(config) = config {
            std::fs::write(dir.path().join("vpcguard.yaml"), config).unwrap();
        }
        for (file, text) in *files {
            let text = match *text {
                "@cert" => cert.as_str(),
                "@key" => key.as_str(),
                "@other-key" => other_key.as_str(),
                t => t,
            };
            std::fs::write(dir.path().join(file), text).unwrap();
        }
        let got = load_outcome(dir.path());
        assert_eq!(got, *want, "case {name}");
    }
}

#[test]
fn shipped_example_config_loads() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/vpcguard.yaml");
    let loaded = load(&path).unwrap();
    let config = &loaded.config;
    assert_eq!(config.listen.address, "0.0.0.0:8443".parse().unwrap());
    assert_eq!(config.admin.address, "127.0.0.1:9901".parse().unwrap());
    assert_eq!(config.tenant.len(), 2);
    assert_eq!(config.vpcep.tlv.len(), 3);
    assert_eq!(config.policy.path, path.with_file_name("policy.yaml"));
    // No files under config/tls/: a self-signed certificate, as the comment in the file says.
    assert!(loaded.tls_self_signed);
}

/// `Display` is `file:line:column: ` followed by the message whenever a position is known, as
/// `check` prints it and reload logs carry it (the message text itself is not tested).
#[test]
fn display_starts_with_file_line_column() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vpcguard.yaml");
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&config, MINIMAL).unwrap();
    std::fs::write(
        &policy,
        "tenants:\n  - enterprise_id: 389efb76b1354e4482eabeed00000000\n    trusted_ips:\n      - { id: \"1\", ip_range: \"10.0.0.0/33\" }\n",
    )
    .unwrap();
    let cases: &[(&str, ConfigError, String)] = &[
        (
            "empty (no position to print)",
            parse("", Path::new(FILE)).unwrap_err(),
            format!("{FILE}: "),
        ),
        (
            "syntax",
            parse("listen:\n  adress: x\n", Path::new(FILE)).unwrap_err(),
            format!("{FILE}:2:3: "),
        ),
        (
            "invalid",
            parse("self_check_path: health\n", Path::new(FILE)).unwrap_err(),
            format!("{FILE}:1:18: self_check_path: "),
        ),
        (
            "policy",
            load(&config).unwrap_err(),
            format!("{}:4:30: ", policy.display()),
        ),
    ];
    for (name, err, want) in cases {
        let got = err.to_string();
        assert!(got.starts_with(want), "case {name}: {got:?} vs {want:?}");
    }
}

/// The bounds of docs/contract.md §2, as defaulted when the file says nothing (`{}`: an empty
/// file is invalid).
#[test]
fn parse_empty_mapping_gives_the_contract_bounds() {
    let c = parse("{}", Path::new(FILE)).unwrap();
    assert_eq!(c.upstream.max_connections, 1024);
    assert_eq!(c.listen.backlog, 1024);
    assert_eq!(c.limits.max_concurrent_streams, 100);
    assert_eq!(
        c.limits.stream_idle_timeout,
        std::time::Duration::from_secs(300)
    );
}

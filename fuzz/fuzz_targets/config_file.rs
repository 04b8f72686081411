//! `vpcguard::config::parse(text, path)`: the config file as `run`, `check` and every reload read it
//! (pure; `config::load` adds only the file I/O).
//!
//! Input: config YAML (lossily UTF-8 decoded, as `read_to_string` would refuse invalid UTF-8).
//!
//! Beyond "no panic":
//! - deterministic (same `Debug` of the config, same error text);
//! - an error's message names the file and, when it has one, a position inside the text;
//! - a config that parses: relative paths are resolved against the config's directory, the admin
//!   and data addresses differ, a reload to the same file needs no restart, and its routes and
//!   tenant rules answer a request.
#![no_main]

use std::path::Path;

use http::{HeaderMap, Method};
use libfuzzer_sys::fuzz_target;
use vpcguard::config::{ConfigError, parse};
use vpcguard::identity::tenant::resolve_tenant;
use vpcguard::reload::{compile_options, restart_needed};

const PATH: &str = "/etc/vpcguard/vpcguard.yaml";

fn line_count(text: &str) -> usize {
    text.matches('\n').count() + text.matches('\r').count() - text.matches("\r\n").count() + 1
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let path = Path::new(PATH);
    let result = parse(&text, path);
    match (&result, parse(&text, path)) {
        (Ok(a), Ok(b)) => assert_eq!(format!("{a:?}"), format!("{b:?}")),
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        (a, b) => panic!("not deterministic: {a:?} vs {b:?}"),
    }
    let config = match result {
        Ok(c) => c,
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.starts_with(PATH), "{msg}");
            let line = match &e {
                ConfigError::Syntax { line, .. } => Some(*line),
                ConfigError::Invalid { invalid, .. } => invalid.pos.map(|(l, _)| l),
                _ => None,
            };
            if let Some(line) = line {
                let lines = line_count(&text) + 1;
                assert!(line >= 1, "{msg}");
                assert!(
                    usize::try_from(line).unwrap_or(usize::MAX) <= lines,
                    "{msg}"
                );
            }
            return;
        }
    };
    assert_eq!(config.base_dir, Path::new("/etc/vpcguard"));
    assert!(config.policy.path.is_absolute(), "{:?}", config.policy.path);
    if let Some(tls) = &config.listen.tls {
        assert!(tls.cert.is_absolute() && tls.key.is_absolute());
    }
    assert_ne!(config.admin.address, config.listen.address);
    assert!(restart_needed(&config, &config).is_empty());
    let opts = compile_options(&config);
    assert_eq!(
        opts.max_vpceps_per_tenant,
        config.limits.max_vpceps_per_tenant
    );

    let headers = HeaderMap::new();
    for (method, p) in [(Method::GET, "/v1/p/x"), (Method::PUT, "/a/archive/b")] {
        let _ = config.routes.right_for(&method, p);
        let _ = resolve_tenant(&config.tenant, &headers, Some("t.example.com"), p);
    }
});

//! `vpcguard::policy::parse_policy` then `Snapshot::compile`, as for a policy file an operator
//! edits (or the admin API writes back).
//!
//! Input: policy YAML (lossily UTF-8 decoded; the loader reads the file with `read_to_string`, so
//! invalid UTF-8 never gets this far).
//!
//! Beyond "no panic":
//! - both are deterministic; an error renders (`PolicyError::render`) with a position inside the
//!   text;
//! - for a file that compiles: `render_policy` succeeds and round-trips
//!   (`parse_policy(render_policy(p)) == p`, which the admin API's writes rely on), the rendered
//!   text compiles to the same counts, and rendering it again gives the same text;
//! - `decide` answers for a request of each tenant and project of the compiled policy.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use vpcguard::policy::{
    CompileOptions, Facts, PolicyError, Right, Snapshot, TenantRef, VpcepRef, decide, parse_policy,
    render_policy,
};

fn check_error(e: &PolicyError, text: &str) {
    let rendered = e.render("policy.yaml");
    assert!(rendered.starts_with("policy.yaml"));
    if let Some((line, col)) = e.position() {
        assert!(line >= 1 && col >= 1, "{e:?}");
        // YAML line breaks are LF, CRLF and a lone CR; an error at the end of the input may
        // point one line past the last.
        let breaks =
            text.matches('\n').count() + text.matches('\r').count() - text.matches("\r\n").count();
        let lines = breaks + 2;
        assert!(
            usize::try_from(line).unwrap_or(usize::MAX) <= lines,
            "line {line} of {lines}: {e:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let parsed = parse_policy(&text);
    assert_eq!(parsed, parse_policy(&text));
    let file = match parsed {
        Ok(f) => f,
        Err(e) => return check_error(&e, &text),
    };
    for opts in [
        CompileOptions::default(),
        CompileOptions {
            unknown_tenant_allow: true,
            max_vpceps_per_tenant: 2,
        },
    ] {
        let snap = match Snapshot::compile(&file, &opts) {
            Ok(s) => s,
            Err(e) => {
                check_error(&e, &text);
                assert_eq!(Snapshot::compile(&file, &opts).err(), Some(e));
                continue;
            }
        };
        assert_eq!(*snap.file(), file);

        let rendered = render_policy(&file).unwrap_or_else(|e| panic!("render: {e}"));
        let back = parse_policy(&rendered)
            .unwrap_or_else(|e| panic!("rendered text does not parse: {e}\n{rendered}"));
        assert_eq!(back, file, "round trip changed the records:\n{rendered}");
        let again = Snapshot::compile(&back, &opts)
            .unwrap_or_else(|e| panic!("rendered text does not compile: {e}\n{rendered}"));
        assert_eq!(again.counts(), snap.counts());
        assert_eq!(
            render_policy(&back).ok().as_deref(),
            Some(rendered.as_str())
        );

        let ip = IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3));
        let tenants = file
            .tenants
            .iter()
            .map(|t| TenantRef::Tenant(t.enterprise_id.as_str()));
        let projects = file
            .projects
            .iter()
            .map(|p| TenantRef::Project(p.project_id.as_str()));
        for tenant in tenants.chain(projects).chain([TenantRef::None]).take(8) {
            for vpcep in [
                None,
                Some(VpcepRef::Id("vpce-1")),
                Some(VpcepRef::Marker(1)),
            ] {
                let facts = Facts {
                    client_ip: ip,
                    tenant,
                    vpcep,
                    right: Right::Download,
                };
                let d = decide(&snap, &facts);
                assert_eq!(d, decide(&snap, &facts));
                if d.outcome.is_allow() {
                    assert!(d.pending.is_none());
                }
            }
        }
    }
});

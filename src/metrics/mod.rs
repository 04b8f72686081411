//! Every metric vpcguard exports (docs/contract.md §9), in one place: names, help texts, label sets, and the
//! closed enums that label values come from. Registered on a private `Registry` handed in by
//! `app.rs` so that tests never collide.
//!
//! No I/O. Label values never come from requests (no IPs, paths or ids).

mod labels;

pub use labels::{
    AdminRoute, DecisionLabel, RejectReason, ReloadFile, RequestReason, RequestRejectReason,
    StoreOp, StreamSide, UpstreamConnState, UpstreamErrorKind,
};
use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// Buckets in seconds: fine below a millisecond (proxy overhead), up to a minute (slow uploads).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

/// The metric families.
#[derive(Clone, Debug)]
pub struct Metrics {
    pub requests_total: IntCounterVec,
    pub request_duration_seconds: Histogram,
    pub upstream_duration_seconds: Histogram,
    pub upstream_errors_total: IntCounterVec,
    pub connections_active: IntGauge,
    /// Of those, the HTTP/1.1 connections parked at rest (hyper's buffers released).
    pub connections_parked: IntGauge,
    pub connections_total: IntCounter,
    pub connection_rejects_total: IntCounterVec,
    /// Requests refused as malformed or ambiguous before they were judged (docs/contract.md §4.0).
    pub request_rejects_total: IntCounterVec,
    pub config_reloads_total: IntCounterVec,
    pub config_last_reload_successful: IntGauge,
    pub config_last_reload_success_timestamp_seconds: IntGauge,
    pub policy_generation: IntGauge,
    pub policy_entries: IntGaugeVec,
    pub admin_requests_total: IntCounterVec,
    pub build_info: IntGaugeVec,
    /// Access lines lost because stdout stayed blocked (see `access_log`).
    pub access_log_dropped_total: IntCounter,
    /// Unknown markers denied but not recorded: `limits.max_pending_connections` was reached.
    pub pending_connections_dropped_total: IntCounter,
    /// Upstream connections open, by [`UpstreamConnState`].
    pub upstream_connections: IntGaugeVec,
    /// Requests answered 503 `VG.00050302`: `upstream.max_connections` open, none freed in time.
    pub upstream_overflows_total: IntCounter,
    /// Upgraded connections (WebSocket) open.
    pub tunnels_active: IntGauge,
    /// Exchanges ended by `limits.stream_idle_timeout`, by [`StreamSide`].
    pub stream_timeouts_total: IntCounterVec,
    /// Its children, resolved once (each exchange holds a clone).
    pub stream_timeouts: StreamTimeouts,
    /// The etcd store's families, registered only with `policy.store: etcd`.
    pub store: StoreMetrics,
    /// The hot-path children of the `*_total` families, resolved once.
    resolved: Resolved,
}

/// The label combinations counted on the data path, resolved once at registration, so that
/// counting is one atomic add: no label hashing, no lock on the family's map per request.
/// Exactly the combinations [`Metrics::register`] pre-creates, so the exposed text is unchanged.
#[derive(Clone, Debug)]
struct Resolved {
    /// `requests_total{decision="allow",reason="none"}`
    allow: IntCounter,
    /// `requests_total{decision="deny",reason=R}`, indexed by `R as usize - 1`.
    deny: Vec<IntCounter>,
    /// `requests_total{decision="report_deny",reason=R}`, indexed like `deny`.
    report_deny: Vec<IntCounter>,
    /// `upstream_errors_total{kind}`, indexed by [`UpstreamErrorKind`] order in `ALL`.
    upstream_errors: Vec<IntCounter>,
    /// `connection_rejects_total{reason}`, indexed by [`RejectReason`] order in `ALL`.
    rejects: Vec<IntCounter>,
}

impl Resolved {
    fn new(
        requests: &IntCounterVec,
        upstream: &IntCounterVec,
        rejects: &IntCounterVec,
    ) -> prometheus::Result<Self> {
        let reasons = |d: DecisionLabel| {
            RequestReason::denials()
                .iter()
                .map(|r| requests.get_metric_with_label_values(&[d.as_str(), r.as_str()]))
                .collect::<prometheus::Result<Vec<_>>>()
        };
        Ok(Resolved {
            allow: requests.get_metric_with_label_values(&["allow", "none"])?,
            deny: reasons(DecisionLabel::Deny)?,
            report_deny: reasons(DecisionLabel::ReportDeny)?,
            upstream_errors: UpstreamErrorKind::ALL
                .iter()
                .map(|k| upstream.get_metric_with_label_values(&[k.as_str()]))
                .collect::<prometheus::Result<_>>()?,
            rejects: RejectReason::ALL
                .iter()
                .map(|r| rejects.get_metric_with_label_values(&[r.as_str()]))
                .collect::<prometheus::Result<_>>()?,
        })
    }

    fn request(&self, decision: DecisionLabel, reason: RequestReason) -> Option<&IntCounter> {
        let deny_index = (reason as usize).checked_sub(1);
        match (decision, reason) {
            (DecisionLabel::Allow, RequestReason::None) => Some(&self.allow),
            (DecisionLabel::Allow, _) => None,
            (DecisionLabel::Deny, _) => self.deny.get(deny_index?),
            (DecisionLabel::ReportDeny, _) => self.report_deny.get(deny_index?),
        }
    }
}

/// `stream_timeouts_total{side}`'s children, in [`StreamSide::ALL`] order. Cheap to clone.
#[derive(Clone, Debug)]
pub struct StreamTimeouts(std::sync::Arc<[IntCounter; 2]>);

impl StreamTimeouts {
    fn new(family: &IntCounterVec) -> prometheus::Result<Self> {
        let [c, u] = StreamSide::ALL.map(|s| family.get_metric_with_label_values(&[s.as_str()]));
        Ok(Self(std::sync::Arc::new([c?, u?])))
    }

    /// Count one exchange ended by `side`'s silence.
    pub fn count(&self, side: StreamSide) {
        if let Some(c) = self.0.get(side as usize) {
            c.inc();
        }
    }
}

/// The `kind` values of `policy_entries`.
pub const POLICY_ENTRY_KINDS: &[&str] = &["tenant", "vpcep", "ip_range", "connection", "project"];

/// `policy_store_*` (docs/contract.md §9, §11): exported only by an instance whose policy lives in
/// etcd, so a file-store fleet has no store series to alert on.
#[derive(Clone, Debug)]
pub struct StoreMetrics {
    /// 1 while the last etcd call succeeded and the watch runs.
    pub up: IntGauge,
    /// The etcd revision of the records read so far.
    pub revision: IntGauge,
    /// Failed etcd calls, by [`StoreOp`].
    pub errors_total: IntCounterVec,
}

impl StoreMetrics {
    fn new() -> prometheus::Result<StoreMetrics> {
        Ok(StoreMetrics {
            up: IntGauge::with_opts(opts(
                "policy_store_up",
                "1 while the policy store (etcd) answers and is watched.",
            ))?,
            revision: IntGauge::with_opts(opts(
                "policy_store_revision",
                "The etcd revision of the policy records read so far.",
            ))?,
            errors_total: IntCounterVec::new(
                opts(
                    "policy_store_errors_total",
                    "Failed policy store (etcd) calls, by operation.",
                ),
                &["op"],
            )?,
        })
    }

    /// Register the families on `reg` and pre-create every `op`.
    pub fn register(&self, reg: &Registry) -> prometheus::Result<()> {
        reg.register(Box::new(self.up.clone()))?;
        reg.register(Box::new(self.revision.clone()))?;
        reg.register(Box::new(self.errors_total.clone()))?;
        for op in StoreOp::ALL {
            self.errors_total.with_label_values(&[op.as_str()]).reset();
        }
        Ok(())
    }
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help).namespace("vpcguard")
}

impl Metrics {
    /// Create every family, register it (and the process collector) on `reg`, and pre-create the
    /// label combinations so that dashboards see zeros rather than gaps.
    pub fn register(reg: &Registry) -> prometheus::Result<Metrics> {
        let hist = |name: &str, help: &str| {
            Histogram::with_opts(
                HistogramOpts::new(name, help)
                    .namespace("vpcguard")
                    .buckets(LATENCY_BUCKETS.to_vec()),
            )
        };
        let requests_total = IntCounterVec::new(
            opts(
                "requests_total",
                "Requests judged, by decision and deny reason.",
            ),
            &["decision", "reason"],
        )?;
        let upstream_errors_total = IntCounterVec::new(
            opts("upstream_errors_total", "Upstream failures by kind."),
            &["kind"],
        )?;
        let connection_rejects_total = IntCounterVec::new(
            opts(
                "connection_rejects_total",
                "Client connections closed before HTTP, by reason.",
            ),
            &["reason"],
        )?;
        let stream_timeouts_total = IntCounterVec::new(
            opts(
                "stream_timeouts_total",
                "Exchanges ended by stream_idle_timeout, by the side that went silent.",
            ),
            &["side"],
        )?;
        let m = Metrics {
            stream_timeouts: StreamTimeouts::new(&stream_timeouts_total)?,
            store: StoreMetrics::new()?,
            stream_timeouts_total,
            resolved: Resolved::new(
                &requests_total,
                &upstream_errors_total,
                &connection_rejects_total,
            )?,
            requests_total,
            request_duration_seconds: hist(
                "request_duration_seconds",
                "Whole request time, from request head to the end of the response body.",
            )?,
            upstream_duration_seconds: hist(
                "upstream_duration_seconds",
                "Time from sending the request upstream to its response head.",
            )?,
            upstream_errors_total,
            connections_active: IntGauge::with_opts(opts(
                "connections_active",
                "Client connections currently open.",
            ))?,
            connections_parked: IntGauge::with_opts(opts(
                "connections_parked",
                "Client HTTP/1.1 connections open and parked at rest, holding no HTTP buffers.",
            ))?,
            connections_total: IntCounter::with_opts(opts(
                "connections_total",
                "Client connections accepted.",
            ))?,
            connection_rejects_total,
            request_rejects_total: IntCounterVec::new(
                opts(
                    "request_rejects_total",
                    "Requests refused before they were judged (malformed or ambiguous), by reason.",
                ),
                &["reason"],
            )?,
            config_reloads_total: IntCounterVec::new(
                opts(
                    "config_reloads_total",
                    "Reload attempts by file and result.",
                ),
                &["file", "result"],
            )?,
            config_last_reload_successful: IntGauge::with_opts(opts(
                "config_last_reload_successful",
                "1 if the last reload attempt succeeded.",
            ))?,
            config_last_reload_success_timestamp_seconds: IntGauge::with_opts(opts(
                "config_last_reload_success_timestamp_seconds",
                "Unix time of the last successful reload.",
            ))?,
            policy_generation: IntGauge::with_opts(opts(
                "policy_generation",
                "Generation of the rules snapshot in force.",
            ))?,
            policy_entries: IntGaugeVec::new(
                opts("policy_entries", "Entries in the rules in force, by kind."),
                &["kind"],
            )?,
            admin_requests_total: IntCounterVec::new(
                opts(
                    "admin_requests_total",
                    "Admin API requests by route and status.",
                ),
                &["route", "status"],
            )?,
            build_info: IntGaugeVec::new(
                opts(
                    "build_info",
                    "Always 1; the version label says which build runs.",
                ),
                &["version"],
            )?,
            access_log_dropped_total: IntCounter::with_opts(opts(
                "access_log_dropped_total",
                "Access log lines dropped because stdout did not keep up.",
            ))?,
            pending_connections_dropped_total: IntCounter::with_opts(opts(
                "pending_connections_dropped_total",
                "Unknown VPC endpoint markers denied but not recorded as pending: limits.max_pending_connections reached.",
            ))?,
            upstream_connections: IntGaugeVec::new(
                opts(
                    "upstream_connections",
                    "Upstream connections open, by whether they carry an exchange.",
                ),
                &["state"],
            )?,
            upstream_overflows_total: IntCounter::with_opts(opts(
                "upstream_overflows_total",
                "Requests refused because upstream.max_connections were open and none came free.",
            ))?,
            tunnels_active: IntGauge::with_opts(opts(
                "tunnels_active",
                "Upgraded (WebSocket) connections currently open.",
            ))?,
        };
        reg.register(Box::new(m.requests_total.clone()))?;
        reg.register(Box::new(m.request_duration_seconds.clone()))?;
        reg.register(Box::new(m.upstream_duration_seconds.clone()))?;
        reg.register(Box::new(m.upstream_errors_total.clone()))?;
        reg.register(Box::new(m.connections_active.clone()))?;
        reg.register(Box::new(m.connections_parked.clone()))?;
        reg.register(Box::new(m.connections_total.clone()))?;
        reg.register(Box::new(m.connection_rejects_total.clone()))?;
        reg.register(Box::new(m.request_rejects_total.clone()))?;
        reg.register(Box::new(m.config_reloads_total.clone()))?;
        reg.register(Box::new(m.config_last_reload_successful.clone()))?;
        reg.register(Box::new(
            m.config_last_reload_success_timestamp_seconds.clone(),
        ))?;
        reg.register(Box::new(m.policy_generation.clone()))?;
        reg.register(Box::new(m.policy_entries.clone()))?;
        reg.register(Box::new(m.admin_requests_total.clone()))?;
        reg.register(Box::new(m.build_info.clone()))?;
        reg.register(Box::new(m.access_log_dropped_total.clone()))?;
        reg.register(Box::new(m.pending_connections_dropped_total.clone()))?;
        reg.register(Box::new(m.upstream_connections.clone()))?;
        reg.register(Box::new(m.upstream_overflows_total.clone()))?;
        reg.register(Box::new(m.tunnels_active.clone()))?;
        reg.register(Box::new(m.stream_timeouts_total.clone()))?;
        reg.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        m.init_labels();
        Ok(m)
    }

    fn init_labels(&self) {
        self.requests_total
            .with_label_values(&["allow", "none"])
            .reset();
        for d in [DecisionLabel::Deny, DecisionLabel::ReportDeny] {
            for r in RequestReason::denials() {
                self.requests_total
                    .with_label_values(&[d.as_str(), r.as_str()])
                    .reset();
            }
        }
        for k in UpstreamErrorKind::ALL {
            self.upstream_errors_total
                .with_label_values(&[k.as_str()])
                .reset();
        }
        for r in RejectReason::ALL {
            self.connection_rejects_total
                .with_label_values(&[r.as_str()])
                .reset();
        }
        for r in RequestRejectReason::ALL {
            self.request_rejects_total
                .with_label_values(&[r.as_str()])
                .reset();
        }
        for f in ReloadFile::ALL {
            for res in ["success", "failure"] {
                self.config_reloads_total
                    .with_label_values(&[f.as_str(), res])
                    .reset();
            }
        }
        for s in StreamSide::ALL {
            self.stream_timeouts_total
                .with_label_values(&[s.as_str()])
                .reset();
        }
        for s in UpstreamConnState::ALL {
            self.upstream_connections
                .with_label_values(&[s.as_str()])
                .set(0);
        }
        for k in POLICY_ENTRY_KINDS {
            self.policy_entries.with_label_values(&[k]).set(0);
        }
        for route in AdminRoute::ALL {
            for status in route.statuses() {
                self.admin_requests_total
                    .with_label_values(&[route.as_str(), status])
                    .reset();
            }
        }
        self.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
    }

    /// Count one judged request.
    ///
    /// # Performance
    /// One atomic add on a child resolved at registration, found by the enums' ordinals; a
    /// combination outside the pre-created set (an allow with a deny reason, a deny without one:
    /// no caller makes them) falls back to the family's label lookup.
    pub fn count_request(&self, decision: DecisionLabel, reason: RequestReason) {
        match self.resolved.request(decision, reason) {
            Some(c) => c.inc(),
            None => self
                .requests_total
                .with_label_values(&[decision.as_str(), reason.as_str()])
                .inc(),
        }
    }

    /// Count one rejected connection.
    pub fn count_reject(&self, reason: RejectReason) {
        if let Some(c) = self.resolved.rejects.get(reason as usize) {
            c.inc();
        }
    }

    /// Count one request refused before it was judged. Rare: the family's label lookup is fine.
    pub fn count_request_reject(&self, reason: RequestRejectReason) {
        self.request_rejects_total
            .with_label_values(&[reason.as_str()])
            .inc();
    }

    /// The `upstream_connections` gauge of `state`.
    pub fn upstream_connections(&self, state: UpstreamConnState) -> IntGauge {
        self.upstream_connections
            .with_label_values(&[state.as_str()])
    }

    /// Count one upstream failure.
    pub fn count_upstream_error(&self, kind: UpstreamErrorKind) {
        if let Some(c) = self.resolved.upstream_errors.get(kind as usize) {
            c.inc();
        }
    }
}

/// Render `reg` in the Prometheus text format.
pub fn render(reg: &Registry) -> String {
    let mut buf = String::new();
    let encoder = prometheus::TextEncoder::new();
    if encoder.encode_utf8(&reg.gather(), &mut buf).is_err() {
        buf.clear();
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolved_children_are_indexed_like_the_enums() {
        for (i, k) in UpstreamErrorKind::ALL.iter().enumerate() {
            assert_eq!(*k as usize, i, "case {k:?}");
        }
        for (i, r) in RequestReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "case {r:?}");
        }
        for (i, r) in RejectReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "case {r:?}");
        }
        for (i, s) in StreamSide::ALL.iter().enumerate() {
            assert_eq!(*s as usize, i, "case {s:?}");
        }
    }

    #[test]
    fn counting_through_resolved_children_shows_in_the_families() {
        let reg = Registry::new();
        let m = Metrics::register(&reg).unwrap();
        let before = render(&reg);
        m.count_request(DecisionLabel::Allow, RequestReason::None);
        m.count_request(DecisionLabel::Deny, RequestReason::IpNotTrusted);
        m.count_request(DecisionLabel::ReportDeny, RequestReason::BadVpcepHeader);
        m.count_reject(RejectReason::Timeout);
        m.count_upstream_error(UpstreamErrorKind::Protocol);
        let after = render(&reg);
        for line in [
            r#"vpcguard_requests_total{decision="allow",reason="none"} 1"#,
            r#"vpcguard_requests_total{decision="deny",reason="ip_not_trusted"} 1"#,
            r#"vpcguard_requests_total{decision="report_deny",reason="bad_vpcep_header"} 1"#,
            r#"vpcguard_connection_rejects_total{reason="timeout"} 1"#,
            r#"vpcguard_upstream_errors_total{kind="protocol"} 1"#,
        ] {
            assert!(after.contains(line), "missing {line}");
        }
        // Same series before and after: resolving children created no new label combination.
        let series = |t: &str| {
            t.lines()
                .filter(|l| l.starts_with("vpcguard_") && !l.starts_with("vpcguard_process"))
                .map(|l| l.rsplit_once(' ').unwrap().0.to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(series(&before), series(&after));
    }
}

//! A real Prometheus (2.42, from Debian's package, fetched by
//! tests/peers/fetch-prometheus.sh) scraping the release monitor every
//! second, and `promtool check metrics` on its output. Without them: skipped
//! visibly, or failed under `KATA_MONITOR_CI=1` (`common::peer`).

mod common;

use common::fake_cri::FakeCri;
use common::node::{Monitor, Sim, tmpdir};
use common::prom::{Prom, bin_dir};
use std::io::Write;
use std::process::{Command, Stdio};

#[test]
fn prometheus_scrapes_the_monitor() {
    let Some(bin) = bin_dir() else { return };
    let sim = Sim::start(&[
        "--sandboxes",
        "3",
        "--bodies",
        "default,small,rs",
        "--fault",
        "1=http500",
    ]);
    let cri_dir = tmpdir("cri");
    let cri = FakeCri::start(&cri_dir.join("cri.sock"));
    for (i, id) in sim.ids.iter().enumerate() {
        cri.set_pod(id, &format!("pod-{i}"), &format!("uid-{i}"), "team-a", true);
    }
    let endpoint = format!("unix://{}", cri_dir.join("cri.sock").display());
    let m = Monitor::start(&sim.roots_arg(), &["--runtime-endpoint", &endpoint]);
    // Metadata arrives before Prometheus's first scrape (~5.5 s after start).
    m.wait_for("/metrics", 10, |r| r.text().contains("cri_name=\"pod-0\""));
    let p = Prom::start(&bin, m.addr);
    let t = p.target_after_scrapes(3, 30);
    assert_eq!(t["health"], "up", "{t}");
    assert_eq!(t["lastError"], "", "{t}");
    // A sandbox series with all four labels.
    let good = &sim.ids[0];
    let r = p.query(&format!(
        "kata_guest_load{{sandbox_id=\"{good}\",item=\"load1\"}}"
    ));
    assert_eq!(r.len(), 1, "{r:?}");
    let labels = &r[0]["metric"];
    assert_eq!(labels["cri_uid"], "uid-0");
    assert_eq!(labels["cri_name"], "pod-0");
    assert_eq!(labels["cri_namespace"], "team-a");
    // The broken shim's sandbox is down, the others up.
    let broken = &sim.ids[1];
    let r = p.query(&format!(
        "kata_monitor_sandbox_up{{sandbox_id=\"{broken}\"}}"
    ));
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0]["value"][1], "0");
    let r = p.query("sum(kata_monitor_sandbox_up)");
    assert_eq!(r[0]["value"][1], "2");
    // Prometheus asked for gzip and OpenMetrics first; it got gzip text
    // (the monitor counts its answers by encoding; this test's own requests
    // above are identity).
    let r = p.query("scrape_samples_scraped{job=\"kata\"}");
    let n: f64 = r[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!(n > 2000.0, "{n} samples");
    let r = p.query("kata_monitor_scrape_responses_total{encoding=\"gzip\"}");
    let gz: f64 = r[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!(gz >= 1.0, "{r:?}");
    drop(p);
    let _ = std::fs::remove_dir_all(&cri_dir);
}

#[test]
fn promtool_accepts_the_output() {
    let Some(bin) = bin_dir() else { return };
    let sim = Sim::start(&[
        "--sandboxes",
        "4",
        "--bodies",
        "default,small,large,rs",
        "--fault",
        "2=garbage",
    ]);
    // Plus a shim whose body is mostly valid but full of edge cases the
    // engine must drop or pass through so that expfmt still accepts it.
    let hostile_root = common::node::tmpdir("hostile");
    let body = concat!(
        r#"# HELP e_a escaped \\ and \n fine"#,
        "\n",
        r#"# HELP e_b quote \" refused by expfmt in HELP"#,
        "\n",
        "# TYPE e_a gauge\n",
        r#"e_a{x="q\"uote\\ \n"} 1"#,
        "\n",
        r#"e_a{sandbox_id="spoof"} 2"#,
        "\n",
        "e_b 1\n",
        "e_c{} 3 1700000000000\n",
        r#"e_d{y="1",} NaN"#,
        "\n",
        "go_x 4\n",
        "kata_shim_go_x 5\n",
        "bad line here\n",
        "e_e 1\r\n",
        r#"e_f{z="\q"} 1"#,
        "\n",
        "# TYPE e_a counter\n",
        "e_g +Inf\n",
        // Outvoted TYPEs, a summary beside a healthy counter `_count`, a
        // family a parser would read as part of a healthy histogram, and
        // one series twice by Prometheus's identity (tests/hostile.rs).
        "# TYPE kata_guest_load counter\n",
        "kata_guest_load{item=\"load1\"} 5\n",
        "# TYPE kata_agent_scrape summary\n",
        "kata_agent_scrape{quantile=\"0.5\"} 1\n",
        "kata_agent_scrape_count 1\n",
        "kata_shim_rpc_durations_histogram_milliseconds_bucket{x=\"1\"} 1\n",
        "dup_metric{x=\"\"} 5\n",
        "dup_metric 6\n",
    );
    let _hostile = common::node::FakeShim::start(&hostile_root.join("hostile1"), body.as_bytes());
    let m = Monitor::start(
        &format!("{},{}", sim.roots_arg(), hostile_root.display()),
        &[],
    );
    let text = m.get("/metrics").text();
    assert!(
        text.contains("sandbox_id=\"hostile1\""),
        "hostile shim not served"
    );
    for target in [
        "/metrics",
        "/metrics?filter_family=kata_guest,kata_shim_go,e_",
    ] {
        let r = m.get(target);
        assert_eq!(r.status, 200);
        let mut child = Command::new(bin.join("promtool"))
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&r.body).unwrap();
        let out = child.wait_with_output().unwrap();
        let code = out.status.code();
        // 0: valid; 3: lint findings only (Kata's own metric names, e.g.
        // counters without _total). Anything else is a parse error.
        assert!(
            matches!(code, Some(0) | Some(3)),
            "promtool exit {code:?} on {target}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

//! Tests of `replay`: the key's hash against a reference, and
//! equivalence: a replayed index is the index a full build gives.

use super::*;

/// The reference: Horner over the chunks, reduced with `%` each step.
fn naive(seed: u64, parts: &[&[u8]]) -> u64 {
    let r = u128::from(Poly::new(seed).r[0]);
    let p = u128::from(P);
    let mut h = 0u128;
    for b in parts {
        for c in b.chunks(7) {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            h = (h * r + u128::from(u64::from_le_bytes(w))) % p;
        }
    }
    h as u64
}

#[test]
fn poly_matches_the_reference() {
    let data: Vec<u8> = (0..400u32).map(|i| (i * 131 + 7) as u8 | 0x80).collect();
    for seed in [0, 1, 0xdead_beef, u64::MAX] {
        for a in [0, 1, 6, 7, 8, 28, 29, 30, 57, 100, 399] {
            for b in [0, 3, 14, 35, 64] {
                let c = (a + b).min(400);
                let (x, y) = (&data[..a], &data[a..c]);
                let mut h = Poly::new(seed);
                h.write(&data, 0..a);
                h.write(&data, a..c);
                assert_eq!(h.finish(), naive(seed, &[x, y]), "{seed} {a} {b}");
                // Alone (no bytes after the range to load).
                let mut h = Poly::new(seed);
                h.write(x, 0..a);
                h.write(y, 0..y.len());
                assert_eq!(h.finish(), naive(seed, &[x, y]), "{seed} {a} {b}");
            }
        }
    }
}

#[test]
fn value_end_is_the_lexers_rule() {
    let long = "9".repeat(400);
    let values = [
        "",
        "0",
        "007",
        "42",
        "123456789012345",
        "1234567890123456",
        &long[..309],
        &long[..256],
        &long[..255],
        "1.5",
        "-1",
        "+Inf",
        "NaN",
        "1e308",
        "1e309",
        "1x",
        "0x1",
        "1_0",
        "\u{e9}",
        "1\r",
        "9\0",
    ];
    for v in values {
        for end in ["", "\n", "\nm 1\n", " 5", "\t", "\r\n", "x"] {
            let body = format!("m {v}{end}");
            let b = body.as_bytes();
            let ve = scan_token(b, 2);
            let eol = ve == b.len() || b[ve] == b'\n';
            let ok = eol && ve - 2 <= MAX_VALUE && float_ok(&b[2..ve]);
            let want = if ok { ve } else { 2 };
            assert_eq!(value_end(b, 2), want, "{body:?}");
        }
    }
}

#[test]
fn poly_tells_apart_differentials_of_the_table_hash() {
    // The top bit of a word and a bit of the next one: a collision of
    // the table hash for every seed; not of this one.
    let a = [b'a'; 48];
    let mut b = a;
    b[7] ^= 0x80;
    b[19] ^= 0x10;
    for seed in 0..64 {
        let (mut x, mut y) = (Poly::new(seed), Poly::new(seed));
        x.write(&a, 0..a.len());
        y.write(&b, 0..b.len());
        assert_ne!(x.finish(), y.finish());
    }
}

mod equivalence {
    //! A replayed index is the index a full build gives, for every kind of
    //! change between two bodies (values, lines, labels, limits, hostile
    //! bytes), and a body that only changed its values is replayed.
    use crate::wire::expo::index::{BodyIndex, Scratch};
    use crate::wire::expo::labels::Labels;
    use crate::wire::expo::limits::Limits;
    use crate::wire::expo::replay::replay;

    const BODIES: [&[u8]; 4] = [
        include_bytes!("../../../../tests/fixtures/default.prom"),
        include_bytes!("../../../../tests/fixtures/edge.prom"),
        include_bytes!("../../../../tests/fixtures/small.prom"),
        b"# TYPE m gauge\nm{a=\"1\"} 1\nm{a=\"2\"} 2 1700000000000\n  m{a=\"3\"}\t3\n\
          # TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n\
          go_x{sandbox_id=\"s\"} 4\nm{a=\"1\"} 5\nbad line\nm{b=\"\"} 6\nlast 7",
    ];
    const GOOD: [&str; 10] = [
        "0",
        "1",
        "12345.678",
        "-Inf",
        "+Inf",
        "NaN",
        "1e308",
        "-2.5e-07",
        "7",
        ".5",
    ];
    const BAD: [&str; 12] = [
        "", "1x", "0x1", "1e309", "1 2", "1 ", "1\r", "nan ", "1\t5", "\u{e9}", "--1", "1_0",
    ];
    const HOSTILE: [&str; 12] = [
        "m{a=\"1\"} 9",
        "# TYPE m counter",
        "# HELP m other",
        "m{a=\"\u{ff}\"} 1",
        "m{sandbox_id=\"x\"} 1",
        "kata_monitor_up 1",
        "h_bucket 1",
        "m{a=\"1\",a=\"2\"} 1",
        "m{a=\"1\"} 1 9999999999999999999999",
        "",
        "#",
        "x{y=\"z\"} 1e400",
    ];

    struct Rng(u64);
    impl Rng {
        fn next(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    /// Every line's last blank-separated token replaced (sample lines: the
    /// value, or a timestamp) with probability 1/`every`.
    fn new_values(body: &[u8], rng: &mut Rng, every: usize, bad: bool) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, line) in body.split(|&b| b == b'\n').enumerate() {
            if i > 0 {
                out.push(b'\n');
            }
            let tok = line.iter().rposition(|&b| b == b' ' || b == b'\t');
            match tok {
                Some(t) if line.first() != Some(&b'#') && rng.next(every) == 0 => {
                    out.extend_from_slice(&line[..=t]);
                    let v = if bad && rng.next(4) == 0 {
                        BAD[rng.next(BAD.len())]
                    } else {
                        GOOD[rng.next(GOOD.len())]
                    };
                    out.extend_from_slice(v.as_bytes());
                }
                _ => out.extend_from_slice(line),
            }
        }
        out
    }

    /// One to three edits of lines or bytes.
    fn edit(body: &[u8], rng: &mut Rng) -> Vec<u8> {
        let mut lines: Vec<Vec<u8>> = body.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
        for _ in 0..1 + rng.next(3) {
            let at = rng.next(lines.len());
            match rng.next(7) {
                0 => lines.insert(at, HOSTILE[rng.next(HOSTILE.len())].as_bytes().to_vec()),
                1 if lines.len() > 1 => {
                    lines.remove(at);
                }
                2 => {
                    let l = lines[at].clone();
                    lines.insert(at, l);
                }
                3 => {
                    let b = rng.next(lines.len());
                    lines.swap(at, b);
                }
                4 if !lines[at].is_empty() => {
                    let i = rng.next(lines[at].len());
                    const BYTES: &[u8] = b" \t\"\\{},=#a0\x80\xff\r\0";
                    lines[at][i] = BYTES[rng.next(BYTES.len())];
                }
                5 if !lines[at].is_empty() => {
                    let i = rng.next(lines[at].len());
                    lines[at].insert(i, b"_ \"x"[rng.next(4)]);
                }
                _ => {
                    let l = lines.len();
                    lines.truncate(l - usize::from(l > 1 && rng.next(2) == 0));
                }
            }
        }
        let mut out = lines.join(&b'\n');
        match rng.next(8) {
            0 => out.truncate(rng.next(out.len() + 1)),
            1 if out.last() == Some(&b'\n') => {
                out.pop();
            }
            2 => out.push(b'\n'),
            _ => {}
        }
        out
    }

    fn same(a: &BodyIndex, b: &BodyIndex) -> Result<(), String> {
        let fa = format!("{:?}", a.fams);
        let fb = format!("{:?}", b.fams);
        if fa != fb {
            return Err(format!("families differ:\n{fa}\n{fb}"));
        }
        let ra = format!("{:?} {:?} {:?}", a.runs, a.ins, a.order);
        let rb = format!("{:?} {:?} {:?}", b.runs, b.ins, b.order);
        if ra != rb {
            return Err("runs, insertions or order differ".into());
        }
        if (a.drops, a.samples) != (b.drops, b.samples) {
            return Err(format!(
                "drops {:?}/{} vs {:?}/{}",
                a.drops, a.samples, b.drops, b.samples
            ));
        }
        Ok(())
    }

    fn labels(rng: &mut Rng) -> Labels {
        let names = ["pod", "a-much-longer-pod-name-with-\"quotes\"", ""];
        Labels::new(["sb", "uid", names[rng.next(3)], "ns"])
    }

    fn limits(rng: &mut Rng, body: &[u8]) -> Limits {
        match rng.next(6) {
            0 => {
                // Near the length of one of the lines, so that a longer
                // value can cross it.
                let lines: Vec<&[u8]> = body.split(|&b| b == b'\n').collect();
                let len = lines[rng.next(lines.len())].len() as u32;
                Limits {
                    max_line: (len + rng.next(3) as u32).saturating_sub(1).max(1),
                    ..Limits::DEFAULT
                }
            }
            1 => Limits {
                max_series: 1 + rng.next(200) as u32,
                ..Limits::DEFAULT
            },
            2 => Limits {
                max_body: (body.len() as u32)
                    .saturating_sub(rng.next(64) as u32)
                    .max(1),
                ..Limits::DEFAULT
            },
            3 => Limits {
                max_labels: rng.next(3) as u8,
                ..Limits::DEFAULT
            },
            _ => Limits::DEFAULT,
        }
    }

    #[test]
    fn replayed_index_is_the_full_index() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let (mut sc, mut fresh_sc) = (Scratch::default(), Scratch::default());
        let mut replayed = 0;
        for case in 0..1500 {
            let body = BODIES[case % BODIES.len()];
            let seed = rng.next(1 << 30) as u64;
            let lim = limits(&mut rng, body);
            let mut idx = BodyIndex::default();
            idx.build(body, &labels(&mut rng), seed, lim, &mut sc);
            let mut prev = body.to_vec();
            // A chain of scrapes: values move, sometimes lines change.
            for _ in 0..4 {
                let next = match rng.next(4) {
                    0 => edit(&prev, &mut rng),
                    1 => new_values(&prev, &mut rng, 3, true),
                    _ => {
                        let every = 1 + rng.next(3);
                        new_values(&prev, &mut rng, every, false)
                    }
                };
                let l = labels(&mut rng);
                idx.build(&next, &l, seed, lim, &mut sc);
                let mut full = BodyIndex::default();
                full.build(&next, &l, seed, lim, &mut fresh_sc);
                if let Err(e) = same(&idx, &full) {
                    panic!(
                        "case {case}: {e}\nbefore: {:?}\nafter: {:?}",
                        String::from_utf8_lossy(&prev),
                        String::from_utf8_lossy(&next)
                    );
                }
                prev = next;
            }
            // The same body once more must replay, whatever came before.
            let l = labels(&mut rng);
            if replay(&mut idx, &prev, &l, seed, lim.clamped(), &mut sc.replay) {
                replayed += 1;
                let mut full = BodyIndex::default();
                full.build(&prev, &l, seed, lim, &mut fresh_sc);
                same(&idx, &full).unwrap();
            } else {
                // Only a body the limits cut is never replayed.
                assert!(prev.len() > lim.clamped().max_body as usize, "case {case}");
            }
        }
        assert!(replayed > 1000, "{replayed}");
    }

    /// Rounds of the engine: sandboxes come and go, change their values,
    /// their lines, their labels; each round's output is the output of a
    /// fresh engine on the same bodies.
    #[test]
    fn rounds_render_as_fresh_engines() {
        use crate::wire::expo::{Exposition, Filter};
        let mut rng = Rng(99);
        let mut expo = Exposition::new(3);
        let mut bodies: Vec<(String, Vec<u8>)> = (0..6)
            .map(|i| (format!("sb{i}"), BODIES[i % BODIES.len()].to_vec()))
            .collect();
        for round in 0..40 {
            expo.clear();
            let mut fresh = Exposition::new(3);
            for (id, body) in &bodies {
                let l = Labels::new([id, "uid", ["pod", "p2"][rng.next(2)], "ns"]);
                expo.add(id, l.clone(), body.clone());
                fresh.add(id, l, body.clone());
            }
            expo.finish();
            fresh.finish();
            assert!(
                expo.render_to_vec(&Filter::all()) == fresh.render_to_vec(&Filter::all()),
                "round {round}"
            );
            for (_, body) in &mut bodies {
                *body = match rng.next(5) {
                    0 => edit(body, &mut rng),
                    _ => new_values(body, &mut rng, 2, false),
                };
            }
            match rng.next(4) {
                0 => {
                    let i = rng.next(bodies.len());
                    bodies.remove(i);
                }
                1 => bodies.push((format!("new{round}"), BODIES[round % 4].to_vec())),
                _ => {}
            }
            // The engine's insertion order is the daemon's discovery order.
            let i = rng.next(bodies.len());
            bodies.swap(0, i);
        }
    }

    #[test]
    fn new_values_replay() {
        let mut rng = Rng(7);
        let body = BODIES[0];
        let mut sc = Scratch::default();
        let mut idx = BodyIndex::default();
        let l = Labels::new(["sb", "uid", "pod", "ns"]);
        idx.build(body, &l, 1, Limits::DEFAULT, &mut sc);
        let mut prev = body.to_vec();
        for _ in 0..20 {
            let next = new_values(&prev, &mut rng, 2, false);
            assert!(replay(
                &mut idx,
                &next,
                &l,
                1,
                Limits::DEFAULT,
                &mut sc.replay
            ));
            let mut full = BodyIndex::default();
            full.build(&next, &l, 1, Limits::DEFAULT, &mut Scratch::default());
            same(&idx, &full).unwrap();
            prev = next;
        }
        // A longer value crossing the line length limit does not replay.
        let lim = Limits {
            max_line: 10,
            ..Limits::DEFAULT
        };
        idx.build(b"m{a=\"1\"} 1\n", &l, 1, lim, &mut sc);
        assert_eq!(idx.samples, 1);
        assert!(!replay(
            &mut idx,
            b"m{a=\"1\"} 12\n",
            &l,
            1,
            lim,
            &mut sc.replay
        ));
        assert!(replay(
            &mut idx,
            b"m{a=\"1\"} 2\n",
            &l,
            1,
            lim,
            &mut sc.replay
        ));
        // Nor other limits.
        assert!(!replay(
            &mut idx,
            b"m{a=\"1\"} 2\n",
            &l,
            1,
            Limits::DEFAULT,
            &mut sc.replay
        ));
        // A NUL after the last line is another body, though its chunks hash
        // the same (zero-padded): lengths are checked, not only hashes.
        idx.build(b"m 1\n# x", &l, 1, Limits::DEFAULT, &mut sc);
        assert!(!replay(
            &mut idx,
            b"m 1\n# x\0",
            &l,
            1,
            Limits::DEFAULT,
            &mut sc.replay
        ));
        assert!(replay(
            &mut idx,
            b"m 2\n# x",
            &l,
            1,
            Limits::DEFAULT,
            &mut sc.replay
        ));
        idx.build(&prev, &l, 1, Limits::DEFAULT, &mut sc);
        // Another seed (another process's key) never replays.
        assert!(!replay(
            &mut idx,
            &prev,
            &l,
            2,
            Limits::DEFAULT,
            &mut sc.replay
        ));
        // A changed HELP text does not.
        let changed = String::from_utf8_lossy(&prev).replacen("Number of", "Numbers of", 1);
        assert!(!replay(
            &mut idx,
            changed.as_bytes(),
            &l,
            1,
            Limits::DEFAULT,
            &mut sc.replay
        ));
    }
}

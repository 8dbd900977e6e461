use super::*;

const S: Duration = Duration::from_secs(1);

fn thresholds(rise: u32, fall: u32, hold_down: u64) -> Thresholds {
    Thresholds {
        rise,
        fall,
        hold_down: Duration::from_secs(hold_down),
        degrade: false,
    }
}

/// Feeds one result per second ('+' pass, '-' fail, '.' a timer tick only) and returns the
/// states entered, as "second:state".
fn run(machine: &mut ServiceMachine, start: Instant, rounds: &str) -> Vec<String> {
    let mut entered = Vec::new();
    for (second, round) in rounds.chars().enumerate() {
        let now = start + S * second as u32;
        let transition = match round {
            '+' => machine.on_result(now, true),
            '-' => machine.on_result(now, false),
            _ => machine.on_timer(now),
        };
        if let Some(t) = transition {
            assert_eq!(t.to, machine.phase());
            assert_eq!(t.announce, machine.announce());
            entered.push(format!("{second}:{}", t.to.name()));
        }
    }
    entered
}

#[test]
fn state_table() {
    // (rise, fall, hold_down s, rounds, states entered)
    let table: &[(u32, u32, u64, &str, &[&str])] = &[
        // First start: up after rise passes, no hold-down.
        (2, 2, 10, "++", &["1:up"]),
        (1, 1, 10, "+", &["0:up"]),
        // Failing from the start: down after fall, never announced; up once it passes,
        // without hold-down (it never flapped).
        (2, 2, 10, "--++", &["1:down", "3:up"]),
        // Up, then fall failures: down; rise passes: hold-down; up when it expires.
        (
            2,
            2,
            3,
            "++--++...",
            &["1:up", "3:down", "5:hold-down", "8:up"],
        ),
        // A failure inside the hold-down: down again, counting from scratch.
        (
            1,
            1,
            3,
            "+-+-+...",
            &[
                "0:up",
                "1:down",
                "2:hold-down",
                "3:down",
                "4:hold-down",
                "7:up",
            ],
        ),
        // Passing results during the hold-down end it at its time, not before.
        (1, 1, 2, "+-+++", &["0:up", "1:down", "2:hold-down", "4:up"]),
        // Flapping every round with rise = fall = 3 never leaves Up.
        (3, 3, 10, "+++-+-+-+-+-+-+-+-+-", &["2:up"]),
        // Fewer than fall failures in a row: stays up.
        (3, 3, 10, "+++--+--+--+", &["2:up"]),
        // hold_down = 0: straight back up.
        (1, 1, 0, "+-+", &["0:up", "1:down", "2:up"]),
    ];
    for (rise, fall, hold, rounds, want) in table {
        let start = Instant::now();
        let mut machine = ServiceMachine::new(thresholds(*rise, *fall, *hold), start);
        let got = run(&mut machine, start, rounds);
        assert_eq!(got, *want, "rise {rise} fall {fall} hold {hold}: {rounds}");
    }
}

#[test]
fn flaps_count_up_to_down_only() {
    let start = Instant::now();
    let mut machine = ServiceMachine::new(thresholds(1, 1, 1), start);
    run(&mut machine, start, "--+-+.+-");
    // Init->down is no flap; up->down twice is.
    assert_eq!(machine.flaps(), 2);
    let mut steady = ServiceMachine::new(thresholds(3, 3, 1), start);
    run(&mut steady, start, "+++-+-+-+-+-+-+-");
    assert_eq!(steady.flaps(), 0);
}

#[test]
fn one_transition_per_change() {
    let start = Instant::now();
    let mut machine = ServiceMachine::new(thresholds(1, 1, 5), start);
    let changes = run(&mut machine, start, "+----------+");
    // A repeating failure is not a change: it is reported once.
    assert_eq!(changes, ["0:up", "1:down", "11:hold-down"]);
    assert_eq!(machine.since(), start + S * 11);
    assert_eq!(machine.deadline(), Some(start + S * 16));
    assert_eq!(machine.on_timer(start + S * 15), None);
    assert!(machine.on_timer(start + S * 16).is_some());
}

#[test]
fn degrade_announces_while_down() {
    let start = Instant::now();
    let mut machine = ServiceMachine::new(
        Thresholds {
            degrade: true,
            ..thresholds(1, 1, 2)
        },
        start,
    );
    assert_eq!(
        machine.announce(),
        Announce::Withdraw,
        "init never announces"
    );
    let up = machine.on_result(start, true).unwrap();
    assert_eq!(up.announce, Announce::Announce);
    let down = machine.on_result(start + S, false).unwrap();
    assert_eq!(down.announce, Announce::Degraded);
    let hold = machine.on_result(start + S * 2, true).unwrap();
    assert_eq!(hold.announce, Announce::Degraded);
}

#[test]
fn reload_keeps_the_state() {
    let start = Instant::now();
    let mut machine = ServiceMachine::new(thresholds(1, 1, 5), start);
    run(&mut machine, start, "+-+");
    let reloaded = machine.with_thresholds(thresholds(2, 2, 1));
    assert_eq!(reloaded.phase(), machine.phase());
    assert_eq!(reloaded.flaps(), 1);
    assert_eq!(
        reloaded.deadline(),
        machine.deadline(),
        "hold-down end kept"
    );
}

#[test]
fn histogram_quantiles() {
    let mut histogram = LatencyHistogram::default();
    assert_eq!(histogram.quantile(0.99), None);
    for _ in 0..99 {
        histogram.record(Duration::from_micros(300)); // bucket < 512 µs
    }
    histogram.record(Duration::from_millis(40)); // bucket < 65536 µs
    assert_eq!(histogram.quantile(0.5), Some(Duration::from_micros(512)));
    assert_eq!(histogram.quantile(0.99), Some(Duration::from_micros(512)));
    assert_eq!(histogram.quantile(1.0), Some(Duration::from_micros(65536)));
    let mut merged = LatencyHistogram::default();
    merged.merge(&histogram);
    merged.merge(&histogram);
    assert_eq!(merged.count(), 200);
    histogram.record(Duration::from_secs(100_000));
    assert_eq!(
        histogram.count(),
        101,
        "huge latencies land in the last bucket"
    );
}

#[test]
fn a_resuming_service_is_decided_by_its_first_round() {
    let start = Instant::now();
    let mut up = ServiceMachine::resuming(thresholds(3, 3, 10), start);
    assert!(up.is_resuming());
    let transition = up.on_result(start, true).expect("decided at once");
    assert_eq!(transition.to, Phase::Up);
    assert!(!up.is_resuming());
    assert_eq!(up.flaps(), 0);
    let mut down = ServiceMachine::resuming(thresholds(3, 3, 10), start);
    assert_eq!(
        down.on_result(start, false).map(|t| t.to),
        Some(Phase::Down)
    );
    // From then on, the usual thresholds: a single failure does not take it down.
    assert_eq!(up.on_result(start, false), None);
}

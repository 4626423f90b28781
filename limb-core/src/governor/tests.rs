//! The donation governor's rules, decided on scripted signals (time, idle, battery, heat).

use super::*;

const NOON: u16 = 12 * 60;

fn signals(minute_of_day: u16, idle_secs: Option<u64>, on_battery: bool) -> Signals {
    Signals {
        minute_of_day,
        idle: idle_secs.map(Duration::from_secs),
        on_battery,
        temperatures: Vec::new(),
        too_hot: None,
        processes: Vec::new(),
        exclusive: None,
    }
}

fn windows(list: &[(&str, &str)]) -> When {
    When::Windows { windows: list.iter().map(|(s, e)| Window { start: s.to_string(), end: e.to_string() }).collect() }
}

#[test]
fn always_gives_when_nothing_stands_in_the_way() {
    let decision = decide(&DonationPolicy::default(), &signals(NOON, Some(0), false), 8);
    assert!(decision.give, "{decision:?}");
    assert_eq!(decision.reason, "always on");
    assert_eq!((decision.max_in_flight, decision.threads), (1, 8));
    assert_eq!(decision.offload, Offload::Fit { cap_mib: None }, "as many layers as fit, by default");
    assert_eq!(decision.keep_alive_minutes, 5);
    assert!(!decision.release_running);
}

#[test]
fn idle_mode_follows_the_idle_time_across_the_threshold() {
    let policy = DonationPolicy { when: When::Idle { minutes: 5 }, ..Default::default() };
    let active = decide(&policy, &signals(NOON, Some(4 * 60 + 59), false), 4);
    assert!(!active.give);
    assert!(active.reason.contains("using the machine"), "{}", active.reason);
    assert!(decide(&policy, &signals(NOON, Some(5 * 60), false), 4).give, "exactly N minutes idle gives");
    assert!(!decide(&policy, &signals(NOON, Some(3), false), 4).give, "input again: back to not giving");
    let unknown = decide(&policy, &signals(NOON, None, false), 4);
    assert!(!unknown.give, "no display to ask: the owner asked for idle only, so do not guess");
    assert!(unknown.reason.contains("cannot tell"), "{}", unknown.reason);
}

#[test]
fn time_windows_include_the_start_exclude_the_end_and_may_cross_midnight() {
    let policy = DonationPolicy { when: windows(&[("09:00", "17:00"), ("22:00", "06:00")]), ..Default::default() };
    let at = |h: u16, m: u16| decide(&policy, &signals(h * 60 + m, Some(0), false), 2).give;
    assert!(at(9, 0) && at(16, 59) && at(22, 0) && at(23, 59) && at(0, 0) && at(5, 59));
    assert!(!at(8, 59) && !at(17, 0) && !at(21, 59) && !at(6, 0));
    let outside = decide(&policy, &signals(18 * 60 + 5, Some(0), false), 2);
    assert_eq!(outside.reason, "outside the donation hours (09:00–17:00, 22:00–06:00; now 18:05)");
}

#[test]
fn battery_stops_giving_only_when_the_owner_asked() {
    let careful = DonationPolicy::default();
    assert!(!decide(&careful, &signals(NOON, Some(0), true), 2).give);
    let generous = DonationPolicy { not_on_battery: false, ..Default::default() };
    assert!(decide(&generous, &signals(NOON, Some(0), true), 2).give);
}

#[test]
fn pause_wins_over_everything_and_says_what_happens_to_running_work() {
    let paused = DonationPolicy { paused: true, ..Default::default() };
    let decision = decide(&paused, &signals(NOON, Some(3600), false), 2);
    assert_eq!((decision.give, decision.reason.as_str(), decision.release_running), (false, "paused by you", false));
    let releasing = DonationPolicy { paused: true, on_pause: OnPause::Release, ..Default::default() };
    assert!(decide(&releasing, &signals(NOON, Some(0), false), 2).release_running);
    let giving = DonationPolicy { on_pause: OnPause::Release, ..Default::default() };
    assert!(!decide(&giving, &signals(NOON, Some(0), false), 2).release_running, "nothing to release while giving");
}

#[test]
fn gpu_pause_keeps_cpu_work_going_without_gpu_layers() {
    let policy = DonationPolicy { gpu_layers: Some(33), gpu_paused: true, ..Default::default() };
    let decision = decide(&policy, &signals(NOON, Some(0), false), 2);
    assert!(decision.give);
    assert_eq!(decision.offload, Offload::CPU);
    assert!(decision.reason.contains("GPU paused"), "{}", decision.reason);
    let resumed = DonationPolicy { gpu_paused: false, ..policy };
    assert_eq!(decide(&resumed, &signals(NOON, Some(0), false), 2).offload, Offload::Layers { layers: 33 });
    let capped = DonationPolicy { gpu_layers: None, gpu_memory_cap_mib: 2048, ..resumed };
    assert_eq!(decide(&capped, &signals(NOON, Some(0), false), 2).offload, Offload::Fit { cap_mib: Some(2048) });
}

fn reading(sensor: &str, kind: thermal::SensorKind, celsius: f32) -> thermal::Reading {
    thermal::Reading { sensor: sensor.into(), kind, celsius }
}

#[test]
fn heat_stops_giving_above_the_limit_and_resumes_only_well_below_it() {
    use thermal::{Heat, Limits, SensorKind::*};
    let limits = Limits { gpu: Some(80.0), cpu: Some(90.0) };
    let mut heat = Heat::default();
    let at = |heat: &mut Heat, gpu: f32, cpu: f32| {
        heat.update(&[reading("amdgpu (hwmon2)", Gpu, gpu), reading("k10temp (hwmon1)", Cpu, cpu)], &limits)
    };
    assert_eq!(at(&mut heat, 80.0, 60.0), None, "at the limit is not past it");
    let hot = at(&mut heat, 81.0, 60.0).expect("past the GPU limit");
    assert!(hot.contains("amdgpu (hwmon2) at 81 °C") && hot.contains("below 75 °C"), "{hot}");
    assert!(at(&mut heat, 78.0, 60.0).is_some(), "still within the hysteresis: stays paused");
    assert_eq!(at(&mut heat, 74.9, 60.0), None, "cooled below limit - 5: gives again");
    assert!(at(&mut heat, 78.0, 60.0).is_none(), "and 78 °C no longer stops it");
    assert!(at(&mut heat, 60.0, 95.0).expect("the CPU too").contains("k10temp"));
    assert_eq!(heat.update(&[], &limits), None, "a sensor that is gone does not hold giving off");
    let no_limits = Limits::default();
    assert_eq!(Heat::default().update(&[reading("amdgpu", Gpu, 120.0)], &no_limits), None);
}

#[test]
fn the_governor_withholds_while_hot_and_says_why() {
    let now = Arc::new(Mutex::new(signals(NOON, Some(0), false)));
    let policy = DonationPolicy { max_gpu_celsius: 80, ..Default::default() };
    let governor = Governor::new(policy, FakeSignals(now.clone()), 4);
    assert!(governor.decision().give);
    now.lock().unwrap().temperatures = vec![reading("nouveau (hwmon4)", thermal::SensorKind::Gpu, 86.0)];
    let hot = governor.refresh();
    assert!(!hot.give && hot.reason.starts_with("too hot: nouveau (hwmon4) at 86 °C"), "{hot:?}");
    now.lock().unwrap().temperatures[0].celsius = 77.0;
    assert!(!governor.refresh().give, "77 °C is within 5 °C of the limit");
    now.lock().unwrap().temperatures[0].celsius = 74.0;
    assert!(governor.refresh().give);
}

#[test]
fn hwmon_readings_take_each_cpu_and_gpu_devices_hottest_sensor() {
    let root = tempfile::tempdir().unwrap();
    let device = |dir: &str, name: &str, temps: &[(&str, &str)]| {
        let path = root.path().join(dir);
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("name"), format!("{name}\n")).unwrap();
        for (file, value) in temps {
            std::fs::write(path.join(file), format!("{value}\n")).unwrap();
        }
    };
    device("hwmon0", "acpitz", &[("temp1_input", "99000")]);
    device("hwmon1", "k10temp", &[("temp1_input", "61250"), ("temp3_input", "70500"), ("temp1_label", "Tctl")]);
    device("hwmon2", "amdgpu", &[("temp1_input", "55000"), ("temp2_input", "garbage")]);
    device("hwmon3", "nvme", &[("temp1_input", "40000")]);
    let readings = thermal::hwmon_readings(root.path());
    assert_eq!(
        readings,
        vec![
            reading("amdgpu (hwmon2)", thermal::SensorKind::Gpu, 55.0),
            reading("k10temp (hwmon1)", thermal::SensorKind::Cpu, 70.5),
        ],
        "the board (acpitz) and disks are not ours; unreadable values are skipped"
    );
    assert!(thermal::hwmon_readings(&root.path().join("absent")).is_empty());
}

#[test]
fn how_much_is_bounded_by_the_machine() {
    let policy = DonationPolicy { cpu_threads: 64, max_concurrent: 3, ..Default::default() };
    let decision = decide(&policy, &signals(NOON, Some(0), false), 8);
    assert_eq!((decision.threads, decision.max_in_flight), (8, 3));
    let two = DonationPolicy { cpu_threads: 2, ..Default::default() };
    assert_eq!(decide(&two, &signals(NOON, Some(0), false), 8).threads, 2);
}

#[test]
fn validation_names_what_is_wrong() {
    assert_eq!(parse_time_of_day("07:30"), Ok(450));
    for bad in ["7:30", "24:00", "12:60", "noon", "12-30", ""] {
        assert!(parse_time_of_day(bad).is_err(), "{bad}");
    }
    let policy = |when| DonationPolicy { when, ..Default::default() };
    assert_eq!(policy(windows(&[])).validate(), Err(PolicyError::NoWindows));
    assert_eq!(policy(windows(&[("10:00", "10:00")])).validate(), Err(PolicyError::EmptyWindow("10:00".into())));
    assert_eq!(policy(windows(&[("10:00", "25:00")])).validate(), Err(PolicyError::Time("25:00".into())));
    assert_eq!(policy(When::Idle { minutes: 0 }).validate(), Err(PolicyError::IdleMinutes));
    let zero = DonationPolicy { max_concurrent: 0, ..Default::default() };
    assert!(matches!(zero.validate(), Err(PolicyError::MaxConcurrent(_))));
    assert_eq!(DonationPolicy::default().validate(), Ok(()));
    let too_cold = DonationPolicy { max_gpu_celsius: 20, ..Default::default() };
    assert_eq!(too_cold.validate(), Err(PolicyError::Celsius), "a limit below 40 °C would never give");
    let forever = DonationPolicy { keep_alive_minutes: 100_000, ..Default::default() };
    assert!(matches!(forever.validate(), Err(PolicyError::KeepAlive(_))));
}

#[test]
fn policies_round_trip_through_the_settings_file_format() {
    let policy = DonationPolicy {
        when: windows(&[("22:00", "06:00")]),
        gpu_paused: true,
        on_pause: OnPause::Release,
        ..Default::default()
    };
    let json = serde_json::to_string(&policy).unwrap();
    assert!(json.contains(r#""mode":"windows""#), "{json}");
    assert_eq!(serde_json::from_str::<DonationPolicy>(&json).unwrap(), policy);
    // A settings file from an older version, missing fields, still loads.
    let old: DonationPolicy = serde_json::from_str(r#"{"paused":true,"gpu_layers":12}"#).unwrap();
    assert!(old.paused && old.when == When::Always);
    assert_eq!(old.gpu_layers, Some(12), "an older file's layer count is kept as a forced count");
}

/// Signals the test moves by hand: a fake clock and idle source.
struct FakeSignals(Arc<Mutex<Signals>>);

impl SignalSource for FakeSignals {
    fn sample(&self) -> Signals {
        self.0.lock().unwrap().clone()
    }
}

#[test]
fn the_governor_publishes_only_changes() {
    let now = Arc::new(Mutex::new(signals(NOON, Some(0), false)));
    let policy = DonationPolicy { when: When::Idle { minutes: 1 }, ..Default::default() };
    let governor = Governor::new(policy, FakeSignals(now.clone()), 4);
    let mut decisions = governor.subscribe();
    assert!(!governor.decision().give);

    governor.refresh();
    assert!(!decisions.has_changed().unwrap(), "same signals, no news");

    now.lock().unwrap().idle = Some(Duration::from_secs(61));
    assert!(governor.refresh().give);
    assert!(decisions.has_changed().unwrap());
    assert!(decisions.borrow_and_update().give);

    let paused = DonationPolicy { paused: true, ..governor.policy() };
    assert!(!governor.set_policy(paused).unwrap().give);
    assert!(!decisions.borrow_and_update().give);

    let invalid = DonationPolicy { max_concurrent: 0, ..governor.policy() };
    assert!(governor.set_policy(invalid).is_err());
    assert!(governor.policy().max_concurrent >= 1, "a refused policy changes nothing");
}

#[test]
fn only_a_discharging_battery_counts() {
    let dir = tempfile::tempdir().unwrap();
    let supply = |name: &str, kind: &str, status: &str| {
        let path = dir.path().join(name);
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("type"), format!("{kind}\n")).unwrap();
        std::fs::write(path.join("status"), format!("{status}\n")).unwrap();
    };
    assert!(!on_battery(&dir.path().join("absent")), "a desktop without power supplies is on mains");
    supply("AC", "Mains", "");
    supply("BAT0", "Battery", "Charging");
    assert!(!on_battery(dir.path()));
    std::fs::write(dir.path().join("BAT0/status"), "Discharging\n").unwrap();
    assert!(on_battery(dir.path()));
}

#[test]
fn a_policy_saved_before_the_models_cap_reads_as_no_cap() {
    let older: DonationPolicy = serde_json::from_str(r#"{"max_concurrent": 2}"#).unwrap();
    assert_eq!((older.models_disk_cap_mib, older.models_cap_bytes()), (0, None));
    assert_eq!(older.models_download_bytes_per_sec(), None);
    let capped = DonationPolicy { models_disk_cap_mib: 10, ..DonationPolicy::default() };
    assert_eq!(capped.models_cap_bytes(), Some(10 << 20));
}

#[test]
fn an_exclusive_program_takes_the_gpu_or_everything_as_the_donor_chose() {
    let running = Signals { exclusive: Some("game.exe is running".into()), ..signals(NOON, Some(0), false) };
    let gpu_only = DonationPolicy { exclusive_programs: vec!["game.exe".into()], ..Default::default() };
    let decision = decide(&gpu_only, &running, 4);
    assert!(decision.give, "the CPU still gives: {decision:?}");
    assert_eq!(decision.offload, Offload::CPU);
    assert_eq!(decision.reason, "always on; GPU not given (game.exe is running), tasks run on the CPU");
    let everything = DonationPolicy { exclusive_stops_all: true, on_pause: OnPause::Release, ..gpu_only.clone() };
    let decision = decide(&everything, &running, 4);
    assert!(!decision.give && decision.release_running, "{decision:?}");
    assert_eq!(decision.reason, "game.exe is running: nothing is given while it runs");
    assert!(decide(&gpu_only, &signals(NOON, Some(0), false), 4).offload != Offload::CPU, "not running: the GPU");
    let bad = DonationPolicy { exclusive_programs: vec![" ".into()], ..Default::default() };
    assert_eq!(bad.validate(), Err(PolicyError::ExclusivePrograms));
}

#[test]
fn the_governor_holds_the_gpu_while_a_listed_process_runs_and_gives_it_back_after() {
    let now = Arc::new(Mutex::new(signals(NOON, Some(0), false)));
    let policy = DonationPolicy {
        exclusive_programs: vec!["Game.exe".into()],
        exclusive_resume_minutes: 0,
        ..Default::default()
    };
    let governor = Governor::new(policy, FakeSignals(now.clone()), 4);
    assert_ne!(governor.decision().offload, Offload::CPU);
    now.lock().unwrap().processes = vec!["bash".into(), "game.exe".into()];
    assert_eq!(governor.refresh().offload, Offload::CPU, "started: the GPU is held");
    now.lock().unwrap().processes = vec!["bash".into()];
    assert_ne!(governor.refresh().offload, Offload::CPU, "exited, no delay: the GPU is given again");
}

#[test]
fn the_gpus_given_go_with_the_decision_and_are_named_sanely() {
    let policy = DonationPolicy { gpus: vec!["0000:02:00.0".into()], ..Default::default() };
    let decision = decide(&policy, &signals(NOON, Some(0), false), 4);
    assert_eq!(decision.gpus, vec!["0000:02:00.0".to_string()]);
    assert_eq!(decide(&DonationPolicy::default(), &signals(NOON, Some(0), false), 4).gpus, Vec::<String>::new());
    assert_eq!(policy.validate(), Ok(()));
    for bad in [vec!["".to_string()], vec!["a\nb".into()], vec!["x".repeat(256)], vec!["card".to_string(); 17]] {
        assert_eq!(DonationPolicy { gpus: bad, ..Default::default() }.validate(), Err(PolicyError::Gpus));
    }
    // A policy saved before the field reads as every GPU.
    let older: DonationPolicy = serde_json::from_str(r#"{"gpu_memory_cap_mib": 2048}"#).unwrap();
    assert!(older.gpus.is_empty());
}

//! How long one wave's choice takes for 10,000 candidates with 200 of them measured (issue 38:
//! under 1 s). `cargo bench -p sweep-explore --bench choose`; prints the median of 5 runs.

use std::collections::BTreeMap;
use std::time::Instant;

use sweep_explore::{choose, Candidate, Feature, Measured, Observed, Settings};

fn main() {
    let loads = [1.0, 4.0, 16.0, 64.0, 256.0];
    let mut candidates = Vec::new();
    let mut measured = BTreeMap::new();
    let mut n = 0u64;
    // 4 TP × 8 batches × 3 MTP × 2 servers × 2 modes × 26 knob values = 9,984, plus 16.
    'all: for knob in 0..27 {
        for mode in ["agg", "disagg"] {
            for servers in [1.0, 2.0] {
                for mtp in [0.0, 1.0, 2.0] {
                    for tp in [1.0f64, 2.0, 4.0, 8.0] {
                        for batch in [4.0f64, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0] {
                            if candidates.len() == 10_000 {
                                break 'all;
                            }
                            let job = format!("job{n}");
                            n += 1;
                            let features = BTreeMap::from([
                                ("mode".to_owned(), Feature::Text(mode.to_owned())),
                                ("gen.tp".to_owned(), Feature::Number(tp)),
                                ("gen.batch".to_owned(), Feature::Number(batch)),
                                ("gen.mtp".to_owned(), Feature::Number(mtp)),
                                ("ctx.servers".to_owned(), Feature::Number(servers)),
                                ("gen.engine_args.knob".to_owned(), Feature::Number(f64::from(knob))),
                            ]);
                            if n.is_multiple_of(50) {
                                let points = loads
                                    .iter()
                                    .map(|&load: &f64| {
                                        let running = load.min(batch);
                                        let x =
                                            100.0 * tp.powf(0.8) * (1.0 + mtp * 0.5) / (1.0 + 0.01 * running);
                                        Observed {
                                            load,
                                            x,
                                            y: x * running / tp,
                                            dx: 0.0,
                                            dy: 0.0,
                                            seconds: 30.0,
                                        }
                                    })
                                    .collect();
                                measured.insert(
                                    job.clone(),
                                    Measured {
                                        tried: loads.to_vec(),
                                        points,
                                        gpu_hours: tp * 0.04,
                                        gpu_hours_with_startup: tp * 0.05,
                                        failed: None,
                                    },
                                );
                            }
                            candidates.push(Candidate {
                                job,
                                gpus: tp,
                                loads: loads.to_vec(),
                                features,
                                infeasible: None,
                            });
                        }
                    }
                }
            }
        }
    }
    let settings = Settings { budget: 1e9, wave: 8, ..Settings::default() };
    let mut times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let wave = choose(&candidates, &measured, &settings);
        times.push(started.elapsed().as_secs_f64());
        assert_eq!(wave.chosen().count(), 8);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "choose: {} candidates, {} measured, wave of {}: median {:.3} s (min {:.3}, max {:.3})",
        candidates.len(),
        measured.len(),
        settings.wave,
        times[2],
        times[0],
        times[4]
    );
}

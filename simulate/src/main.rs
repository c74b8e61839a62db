//! `make simulate`: the named scenarios, each run with the core's real flow, as a table
//! (`--short`: the runs `make test` makes).

use gemini_pool_simulate::scenarios::{ceiling, limit_scenarios, scenarios, workers_designs, Size};
use gemini_pool_simulate::world::{run, Report};

fn main() {
    let size = if std::env::args().any(|a| a == "--short") { Size::Short } else { Size::Full };
    println!("| scenario | requests | served / quota | calls per success | late hits ≤0.5 s / ≤1.3 s / later (latest) | verdicts | lost | limited store calls per verdict | refused writes |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for scenario in scenarios(size) {
        let started = std::time::Instant::now();
        let report = run(&scenario);
        print_row(scenario.name, &report);
        eprintln!("{}: {:.1} s", scenario.name, started.elapsed().as_secs_f64());
    }
    println!();
    println!("| a client's limit | requests | limit | admitted | over the limit |");
    println!("|---|---|---|---|---|");
    for scenario in limit_scenarios(size) {
        let report = run(&scenario);
        let limit = scenario.limits.and_then(|l| l.rpd).unwrap_or(0);
        let over = report.admitted().saturating_sub(limit);
        println!("| {} | {} | {limit} | {} | **{over}** |", scenario.name, report.requests, report.admitted());
    }
    println!();
    println!("| Workers state | ceiling (requests/s with < 1 % of state calls `overloaded`) |");
    println!("|---|---|");
    for (name, config) in workers_designs() {
        match ceiling(&config, size) {
            u64::MAX => println!("| {name} | over 100,000 |"),
            rate => println!("| {name} | {rate} |"),
        }
    }
}

fn print_row(name: &str, r: &Report) {
    println!(
        "| {name} | {} | {} / {} | {:.2} | {} / {} / {} ({} ms) | {} | **{}** | {:.2} | {} |",
        r.requests,
        r.served,
        r.capacity,
        r.calls_per_success(),
        r.late[0],
        r.late[1],
        r.late[2],
        r.latest_late_ms,
        r.verdicts,
        r.lost,
        r.store_calls_per_verdict(),
        r.refused_writes
    );
}

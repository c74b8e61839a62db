//! `make simulate`: the named scenarios, each run with the core's real flow, as a table
//! (`--short`: the runs `make test` makes).

use gemini_pool_simulate::scenarios::{
    busy_client, ceiling, limit_scenarios, relearning_scenarios, scenarios, workers_designs, Size,
};
use gemini_pool_simulate::world::{run, Report};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let size = if args.iter().any(|a| a == "--short") { Size::Short } else { Size::Full };
    // `--only TEXT`: the scenarios whose name holds TEXT (to time or profile one).
    let only = args.iter().position(|a| a == "--only").and_then(|i| args.get(i + 1)).cloned();
    let picked = |name: &str| only.as_deref().is_none_or(|text| name.contains(text));
    println!("| scenario | requests | served / quota | calls per success | late hits ≤0.5 s / ≤1.3 s / later (latest) | verdicts | lost | limited store calls per verdict | refused writes | state reads per request | CPU per request: median / dearest µs (dearest ÷ median; per step) |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let all = scenarios(size).into_iter().chain(relearning_scenarios(size));
    for scenario in all.filter(|s| picked(s.name)) {
        let started = std::time::Instant::now();
        let report = run(&scenario);
        print_row(scenario.name, &report);
        eprintln!("{}: {:.1} s", scenario.name, started.elapsed().as_secs_f64());
    }
    println!();
    println!("| a client's limit | requests | an exact count admits | admitted | over-admitted | wrongly refused | state reads / inserts per request |");
    println!("|---|---|---|---|---|---|---|");
    for scenario in limit_scenarios(size).into_iter().chain(busy_client(size)).filter(|s| picked(s.name)) {
        let r = run(&scenario);
        let (over, wrong) = (r.over_admitted(), r.wrongly_refused());
        println!(
            "| {} | {} | {} | {} | **{over}** | **{wrong}** | {:.1} / {:.1} |",
            scenario.name,
            r.requests,
            r.allowed,
            r.admitted(),
            r.item_reads as f64 / r.requests.max(1) as f64,
            r.store_calls as f64 / r.requests.max(1) as f64,
        );
    }
    println!();
    println!("| Workers state | ceiling (requests/s with < 1 % of state calls `overloaded`) |");
    println!("|---|---|");
    for (name, config) in workers_designs().into_iter().filter(|(name, _)| picked(name)) {
        match ceiling(&config, size) {
            u64::MAX => println!("| {name} | over 100,000 |"),
            rate => println!("| {name} | {rate} |"),
        }
    }
}

fn print_row(name: &str, r: &Report) {
    let (median, dearest) = r.cpu_us();
    println!(
        "| {name} | {} | {} / {} | {:.2} | {} / {} / {} ({} ms) | {} | **{}** | {:.2} | {} | {:.1} | {median:.0} / {dearest:.0} ({:.1}×; {:.1}×) |",
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
        r.refused_writes,
        r.item_reads as f64 / r.requests.max(1) as f64,
        r.dearest_over_median(),
        r.dearest_step_over_median()
    );
}

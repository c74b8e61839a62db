//! The attempt loop's invariants (`gemini_pool_checks::attempt_loop`, blast radius included)
//! over 20,000 seeded random inputs: a property test that runs in `make test`, beside the
//! replay of the committed fuzz corpus.

use gemini_pool_core::Rng;

#[test]
fn one_request_changes_little_whatever_google_answers() {
    let mut rng = Rng::new(0x6b1a57);
    for _ in 0..20_000 {
        let input: Vec<u8> = (0..rng.below(96)).map(|_| rng.next_u64() as u8).collect();
        let result = std::panic::catch_unwind(|| gemini_pool_checks::attempt_loop(&input));
        assert!(result.is_ok(), "breaks an invariant: {input:?}");
    }
}

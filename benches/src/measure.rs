//! Measuring helpers: medians of interleaved timings, a small PRNG, object-like bytes,
//! the process's resident memory.

use std::time::Duration;

use anyhow::Result;

/// The median of `samples` (sorted in place); zero for none.
pub fn median(samples: &mut [Duration]) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort_unstable();
    samples[samples.len() / 2]
}

/// The median of `values` (sorted in place); NaN for none.
pub fn median_f64(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_unstable_by(f64::total_cmp);
    values[values.len() / 2]
}

/// A duration in microseconds.
pub fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// A duration in milliseconds.
pub fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A timed step: returns the time of the part that counts (setup and teardown it does
/// itself are left out).
pub type Step<'a> = Box<dyn FnMut() -> Result<Duration> + 'a>;

/// Runs `steps` in turn, `rounds` times (A B C A B C ...), so that drift in the
/// machine's state (frequency, caches, other load) hits them alike; returns the median
/// of each step's timings.
pub fn interleaved(rounds: usize, steps: &mut [Step<'_>]) -> Result<Vec<Duration>> {
    let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(rounds); steps.len()];
    for _ in 0..rounds {
        for (step, out) in steps.iter_mut().zip(&mut samples) {
            out.push(step()?);
        }
    }
    Ok(samples.iter_mut().map(|s| median(s)).collect())
}

/// xorshift64: deterministic, fast, good enough to pick keys.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number below `n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// Object-file-like bytes: part noise, part a repeated instruction pattern, so they
/// compress about as well as real objects do.
pub fn object_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&rng.next_u64().to_le_bytes()[..4]);
        out.extend_from_slice(&[0x48, 0x89, 0xe5, 0x00]);
    }
    out.truncate(len);
    out
}

/// A field of `/proc/self/status` in bytes (`VmRSS`, `VmHWM`), if the kernel has it.
pub fn status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_status_kib(&status, field).map(|kib| kib * 1024)
}

/// The value in kB of `field` in the text of a `/proc/<pid>/status` file.
pub fn parse_status_kib(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        let ms = Duration::from_millis;
        assert_eq!(median(&mut [ms(3), ms(1), ms(2)]), ms(2));
        assert_eq!(median(&mut [ms(4), ms(1), ms(3), ms(2)]), ms(3));
        assert_eq!(median(&mut []), Duration::ZERO);
    }

    #[test]
    fn interleaved_runs_each_step_once_per_round() {
        let (mut a, mut b) = (0, 0);
        let medians = {
            let mut steps: Vec<Step<'_>> = vec![
                Box::new(|| {
                    a += 1;
                    Ok(Duration::from_micros(a))
                }),
                Box::new(|| {
                    b += 1;
                    Ok(Duration::from_micros(10 * b))
                }),
            ];
            interleaved(5, &mut steps).unwrap()
        };
        assert_eq!((a, b), (5, 5));
        assert_eq!(
            medians,
            vec![Duration::from_micros(3), Duration::from_micros(30)]
        );
    }

    #[test]
    fn status_fields_parse() {
        let text = "Name:\tjitcache\nVmHWM:\t   12345 kB\nVmRSS:\t    2048 kB\n";
        assert_eq!(parse_status_kib(text, "VmHWM"), Some(12345));
        assert_eq!(parse_status_kib(text, "VmRSS"), Some(2048));
        assert_eq!(parse_status_kib(text, "VmSwap"), None);
    }

    #[test]
    fn rng_and_bytes_are_deterministic() {
        assert_eq!(object_bytes(7, 1000), object_bytes(7, 1000));
        assert_ne!(object_bytes(7, 1000), object_bytes(8, 1000));
        assert_eq!(object_bytes(7, 1001).len(), 1001);
        let mut r = Rng::new(1);
        assert!((0..1000).all(|_| r.below(10) < 10));
    }
}

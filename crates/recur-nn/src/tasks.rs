//! Synthetic long-memory tasks for recurrent models, generated on the host
//! from a seeded [`Rng`].

use recur_gpu::Rng;

/// The adding problem (Hochreiter & Schmidhuber 1997): `t` pairs (value in
/// [0, 1), marker); exactly two markers are set, one in each half, and the
/// target is the sum of the two marked values. Predicting the mean (1)
/// gives MSE ≈ 1/6; solving it needs memory across the whole sequence.
///
/// Returns the inputs time-major (t, b, 2) and the targets (b, 1).
pub fn adding_problem(t: usize, b: usize, rng: &mut Rng) -> (Vec<f32>, Vec<f32>) {
    let mut x = vec![0.0; t * b * 2];
    let mut y = vec![0.0; b];
    if t == 0 {
        return (x, y);
    }
    let half = (t / 2).max(1);
    for k in 0..b {
        let i = rng.below(half as u32) as usize;
        let j = (half + rng.below((t - half).max(1) as u32) as usize).min(t - 1);
        for s in 0..t {
            x[(s * b + k) * 2] = rng.next_f32();
        }
        for m in [i, j] {
            x[(m * b + k) * 2 + 1] = 1.0;
            y[k] += x[(m * b + k) * 2];
        }
    }
    (x, y)
}

/// The copy task (Hochreiter & Schmidhuber 1997, in the form of Arjovsky et
/// al. 2016): `length` symbols drawn from `1..=symbols`, then `delay`
/// blanks (0), then a delimiter (`symbols + 1`) followed by `length − 1`
/// blanks; the target is blank everywhere except the last `length` steps,
/// which must repeat the symbols. A model without memory scores
/// `length · ln(symbols) / seq_len()` nats per step at best.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CopyTask {
    /// Alphabet size (excluding blank and delimiter).
    pub symbols: usize,
    /// Symbols to remember.
    pub length: usize,
    /// Blank steps between the symbols and the delimiter.
    pub delay: usize,
}

impl CopyTask {
    /// Token ids: blank, the symbols, the delimiter.
    pub fn vocab(&self) -> usize {
        self.symbols + 2
    }

    /// Steps per sequence: symbols, delay, delimiter and recall.
    pub fn seq_len(&self) -> usize {
        2 * self.length + self.delay
    }

    /// The loss (nats per step) of the best memoryless predictor.
    pub fn baseline(&self) -> f32 {
        self.length as f32 * (self.symbols as f32).ln() / self.seq_len() as f32
    }

    /// Steps whose targets are symbols to recall: the last `length`.
    pub fn recall(&self) -> std::ops::Range<usize> {
        self.seq_len() - self.length..self.seq_len()
    }

    /// A batch of `b` sequences, time-major (seq_len, b): inputs and targets.
    pub fn batch(&self, b: usize, rng: &mut Rng) -> (Vec<u32>, Vec<u32>) {
        let s = self.seq_len();
        let (mut x, mut y) = (vec![0u32; s * b], vec![0u32; s * b]);
        let start = self.recall().start;
        for k in 0..b {
            for i in 0..self.length {
                let sym = 1 + rng.below(self.symbols.max(1) as u32);
                x[i * b + k] = sym;
                y[(start + i) * b + k] = sym;
            }
            x[(self.length + self.delay) * b + k] = self.symbols as u32 + 1;
        }
        (x, y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adding_targets_are_the_marked_sums() {
        let (t, b) = (9, 4);
        let (x, y) = adding_problem(t, b, &mut Rng::new(1));
        for k in 0..b {
            let marked: Vec<usize> = (0..t).filter(|&s| x[(s * b + k) * 2 + 1] == 1.0).collect();
            assert_eq!(marked.len(), 2);
            assert!(marked[0] < t / 2 && marked[1] >= t / 2);
            let sum: f32 = marked.iter().map(|&s| x[(s * b + k) * 2]).sum();
            assert_eq!(sum, y[k]);
        }
    }

    #[test]
    fn copy_targets_repeat_the_symbols_after_the_delimiter() {
        let task = CopyTask {
            symbols: 8,
            length: 5,
            delay: 7,
        };
        let b = 3;
        let (x, y) = task.batch(b, &mut Rng::new(2));
        assert_eq!(x.len(), task.seq_len() * b);
        for k in 0..b {
            let col = |v: &[u32]| {
                (0..task.seq_len())
                    .map(|s| v[s * b + k])
                    .collect::<Vec<_>>()
            };
            let (xs, ys) = (col(&x), col(&y));
            assert!(xs[..5].iter().all(|&s| (1..=8).contains(&s)));
            assert_eq!(xs[12], 9, "delimiter after the delay");
            assert_eq!(&ys[task.recall()], &xs[..5]);
            assert!(ys[..task.recall().start].iter().all(|&s| s == 0));
            assert!(xs[5..12].iter().chain(&xs[13..]).all(|&s| s == 0));
        }
        assert!((task.baseline() - 5.0 * 8f32.ln() / 17.0).abs() < 1e-6);
    }
}

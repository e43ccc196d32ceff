//! Truncated backpropagation through time, TBPTT(k1, k2) (Williams & Peng
//! 1990; the k1/k2 notation of Sutskever 2013): over a long sequence, make
//! an update every k1 steps, backpropagating through the last k2 steps.
//!
//! The hidden state is carried from one update to the next without
//! gradient ([`Var::detach`]). With k2 > k1 the windows overlap: each
//! update re-runs the last k2 steps from the state saved k2 steps back, and
//! its loss counts the k1 new steps only, so every step's loss is counted
//! once while its gradient reaches up to k2 steps into the past. With
//! k2 < k1 the first k1 − k2 new steps run without gradient and only the
//! last k2 count in the loss. k1 = k2 is the usual split into windows.

use std::ops::Range;

use recur_gpu::{Error, Result};

use crate::autograd::{no_grad, Var};
use crate::functional as F;

/// TBPTT(k1, k2): update every `k1` steps, backpropagate `k2` steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tbptt {
    /// Steps between updates.
    pub k1: usize,
    /// Steps each update backpropagates through.
    pub k2: usize,
}

/// One update of a [`Tbptt::plan`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Update {
    /// Steps run without gradient from the carried state up to the window
    /// (non-empty only when k1 > k2).
    pub warmup: Range<usize>,
    /// The window, run in the graph; split in two where the next update's
    /// state is taken (when k2 > k1).
    pub chunks: Vec<Range<usize>>,
    /// Where the next update starts: the state after this step is carried.
    pub carry: usize,
    /// Steps whose outputs count in this update's loss.
    pub loss: Range<usize>,
}

/// A recurrent state TBPTT carries: a list of tensors, or a
/// [`crate::State`].
pub trait Carry: Clone {
    /// The same values without gradient history.
    fn detached(&self) -> Self;
}

impl Carry for Vec<Var> {
    fn detached(&self) -> Self {
        self.iter().map(Var::detach).collect()
    }
}

impl Carry for crate::State {
    fn detached(&self) -> Self {
        self.detach()
    }
}

impl<T: Carry> Carry for Option<T> {
    fn detached(&self) -> Self {
        self.as_ref().map(Carry::detached)
    }
}

/// What a chunk of the model's forward returns to [`Tbptt::run`].
pub struct Chunk<S = Vec<Var>> {
    /// Sum of the per-step losses in the requested loss range (`None` when
    /// it is empty).
    pub loss_sum: Option<Var>,
    /// How many terms `loss_sum` adds up (tokens, say); the update's loss
    /// is the sum over chunks divided by the total count.
    pub count: usize,
    /// The recurrent state after the chunk's last step.
    pub state: S,
}

impl Tbptt {
    /// TBPTT(k1, k2); both must be positive.
    pub fn new(k1: usize, k2: usize) -> Result<Self> {
        if k1 == 0 || k2 == 0 {
            return Err(Error::InvalidArgument {
                op: "Tbptt::new",
                what: format!("k1 and k2 must be positive, got k1 = {k1}, k2 = {k2}"),
            });
        }
        Ok(Self { k1, k2 })
    }

    /// The updates over a sequence of `len` steps (the last may be shorter).
    pub fn plan(&self, len: usize) -> Vec<Update> {
        let (k1, k2) = (self.k1, self.k2);
        let mut out = Vec::new();
        let (mut p, mut t) = (0, 0);
        while t < len {
            t = (t + k1).min(len);
            let w = t.saturating_sub(k2).max(p);
            let carry = (t + k1).saturating_sub(k2).clamp(w, t);
            let chunks = if w < carry && carry < t {
                vec![w..carry, carry..t]
            } else {
                // One chunk: the whole window.
                std::iter::once(w..t).collect()
            };
            out.push(Update {
                warmup: p..w,
                chunks,
                carry,
                loss: t.saturating_sub(k1).max(w)..t,
            });
            p = carry;
        }
        out
    }

    /// Runs the plan over a sequence of `len` steps from `state` (empty for
    /// the model's zero state): [`Tbptt::run_update`] for each update.
    /// Returns the final state (detached) and the updates' losses.
    pub fn run<S: Carry>(
        &self,
        len: usize,
        state: S,
        mut forward: impl FnMut(Range<usize>, &S, Range<usize>) -> Result<Chunk<S>>,
        mut update: impl FnMut(&Var) -> Result<()>,
    ) -> Result<(S, Vec<Var>)> {
        let mut state = state.detached();
        let mut losses = Vec::new();
        for u in self.plan(len) {
            let (next, loss) = self.run_update(&u, &state, &mut forward, &mut update)?;
            state = next;
            losses.push(loss);
        }
        Ok((state, losses))
    }

    /// One update of a plan, from the state carried to `u.warmup.start`
    /// (or to the window's start when there is no warm-up).
    ///
    /// `forward(steps, state, loss_steps)` runs the model over `steps` from
    /// `state` and returns a [`Chunk`] whose loss covers `loss_steps` (a
    /// sub-range of `steps`, possibly empty). `update(loss)` gets the mean
    /// loss and does the backward and optimizer step. Returns the state to
    /// carry to the next update (detached) and the loss (detached).
    pub fn run_update<S: Carry>(
        &self,
        u: &Update,
        state: &S,
        mut forward: impl FnMut(Range<usize>, &S, Range<usize>) -> Result<Chunk<S>>,
        mut update: impl FnMut(&Var) -> Result<()>,
    ) -> Result<(S, Var)> {
        let detach = |s: &S| s.detached();
        let clip = |r: &Range<usize>, l: &Range<usize>| r.start.max(l.start)..r.end.min(l.end);
        let mut s = detach(state);
        if !u.warmup.is_empty() {
            let _g = no_grad();
            s = forward(u.warmup.clone(), &s, u.warmup.end..u.warmup.end)?.state;
        }
        let start = u.chunks.first().map_or(u.carry, |r| r.start);
        let mut carried = (u.carry == start).then(|| detach(&s));
        let (mut sum, mut count) = (None::<Var>, 0);
        for r in &u.chunks {
            let c = forward(r.clone(), &s, clip(r, &u.loss))?;
            if let Some(l) = c.loss_sum {
                sum = Some(match sum {
                    Some(acc) => F::add(&acc, &l)?,
                    None => l,
                });
            }
            count += c.count;
            s = c.state;
            if r.end == u.carry {
                carried = Some(detach(&s));
            }
        }
        let loss = match sum {
            Some(sum) if count > 0 => F::scale(&sum, 1.0 / count as f32)?,
            _ => {
                return Err(Error::InvalidArgument {
                    op: "Tbptt::run_update",
                    what: format!("update over steps {:?} produced no loss", u.loss),
                })
            }
        };
        update(&loss)?;
        Ok((carried.unwrap_or_else(|| detach(&s)), loss.detach()))
    }
}

#[cfg(test)]
// The expected plans are lists of chunk ranges, often of one chunk.
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;

    /// (warm-up, chunks, loss) of one update.
    type Row = (Range<usize>, Vec<Range<usize>>, Range<usize>);

    fn chunks(t: &Tbptt, len: usize) -> Vec<Row> {
        t.plan(len)
            .into_iter()
            .map(|u| (u.warmup, u.chunks, u.loss))
            .collect()
    }

    #[test]
    fn equal_k_splits_into_windows() {
        let t = Tbptt::new(4, 4).unwrap();
        assert_eq!(
            chunks(&t, 10),
            vec![
                (0..0, vec![0..4], 0..4),
                (4..4, vec![4..8], 4..8),
                (8..8, vec![8..10], 8..10),
            ]
        );
    }

    #[test]
    fn longer_k2_overlaps_and_counts_each_loss_once() {
        let t = Tbptt::new(2, 4).unwrap();
        let p = chunks(&t, 8);
        assert_eq!(
            p,
            vec![
                (0..0, vec![0..2], 0..2),
                (0..0, vec![0..2, 2..4], 2..4),
                (2..2, vec![2..4, 4..6], 4..6),
                (4..4, vec![4..6, 6..8], 6..8),
            ]
        );
        // Every step is in exactly one loss range.
        let mut seen = [0; 8];
        for (_, _, l) in &p {
            l.clone().for_each(|i| seen[i] += 1);
        }
        assert_eq!(seen, [1; 8]);
    }

    #[test]
    fn shorter_k2_warms_up_without_gradient() {
        let t = Tbptt::new(4, 2).unwrap();
        assert_eq!(
            chunks(&t, 9),
            vec![
                (0..2, vec![2..4], 2..4),
                (4..6, vec![6..8], 6..8),
                (8..8, vec![8..9], 8..9),
            ]
        );
        assert!(Tbptt::new(0, 3).is_err());
    }
}

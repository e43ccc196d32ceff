//! Learning-rate schedules.

/// Learning-rate schedules: the factor applied to the base rate at a step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LrSchedule {
    /// Always 1.
    Constant,
    /// Linear from 1/warmup to 1 over `warmup` steps, then 1.
    LinearWarmup {
        /// Warm-up steps.
        warmup: u64,
    },
    /// Linear warm-up, then a cosine decay to `min_factor` at `total` steps
    /// (Loshchilov & Hutter 2017, without restarts).
    Cosine {
        /// Warm-up steps.
        warmup: u64,
        /// Step at which the decay reaches `min_factor`.
        total: u64,
        /// Final factor.
        min_factor: f32,
    },
}

impl LrSchedule {
    /// The factor at `step` (0-based).
    pub fn factor(&self, step: u64) -> f32 {
        let warm = |w: u64| {
            if w > 0 && step < w {
                (step + 1) as f32 / w as f32
            } else {
                1.0
            }
        };
        match *self {
            LrSchedule::Constant => 1.0,
            LrSchedule::LinearWarmup { warmup } => warm(warmup),
            LrSchedule::Cosine {
                warmup,
                total,
                min_factor,
            } => {
                if step < warmup {
                    return warm(warmup);
                }
                let span = total.saturating_sub(warmup).max(1) as f32;
                let progress = ((step - warmup) as f32 / span).min(1.0);
                min_factor
                    + (1.0 - min_factor) * 0.5 * (1.0 + (std::f32::consts::PI * progress).cos())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LrSchedule;

    #[test]
    fn schedules_warm_up_and_decay() {
        let w = LrSchedule::LinearWarmup { warmup: 4 };
        assert_eq!(
            [w.factor(0), w.factor(1), w.factor(3), w.factor(100)],
            [0.25, 0.5, 1.0, 1.0]
        );
        let c = LrSchedule::Cosine {
            warmup: 2,
            total: 12,
            min_factor: 0.1,
        };
        assert_eq!(c.factor(0), 0.5);
        assert!((c.factor(2) - 1.0).abs() < 1e-6);
        assert!((c.factor(7) - 0.55).abs() < 1e-6);
        assert!((c.factor(12) - 0.1).abs() < 1e-6);
        assert!((c.factor(1000) - 0.1).abs() < 1e-6);
        assert_eq!(LrSchedule::Constant.factor(5), 1.0);
    }
}

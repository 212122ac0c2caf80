//! The rendering budget: output bytes and steps, shared by every rendering of one request.

/// The default output budget of a rendering, in bytes: 1 MiB. It is also the largest request body
/// hookwire sends, since a body is rendered output (`max_render_bytes`).
pub const DEFAULT_MAX_RENDER_BYTES: usize = 1024 * 1024;

/// The default work budget of a rendering, in steps: nodes visited, section iterations and name
/// lookups (`max_render_steps`). About a few tens of milliseconds of one thread at most.
pub const DEFAULT_MAX_RENDER_STEPS: u64 = 1_000_000;

/// The two bounds of a [`RenderBudget`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderLimits {
    /// Most bytes of output (`max_render_bytes`).
    pub max_bytes: usize,
    /// Most steps: nodes visited, section iterations, name segments and context frames looked through
    /// (`max_render_steps`).
    pub max_steps: u64,
}

impl Default for RenderLimits {
    fn default() -> Self {
        RenderLimits { max_bytes: DEFAULT_MAX_RENDER_BYTES, max_steps: DEFAULT_MAX_RENDER_STEPS }
    }
}

/// What renderings may still spend. One budget is shared by every rendering of one request (url,
/// query, form, json, body, headers, auth), so the whole request is bounded, not each field.
#[derive(Debug, Clone)]
pub struct RenderBudget {
    pub(super) limits: RenderLimits,
    pub(super) num_bytes: usize,
    pub(super) num_steps: u64,
}

/// Why a rendering stopped: it would have gone over its budget. The message names the budget and
/// its setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BudgetExceeded {
    /// The output would be larger than `max` bytes.
    #[error("output over the render budget of {max} bytes (max_render_bytes)")]
    Bytes {
        /// The budget, bytes.
        max: usize,
    },
    /// The rendering would take more than `max` steps (sections iterating too much).
    #[error("work over the render budget of {max} steps (max_render_steps): sections iterate too much")]
    Steps {
        /// The budget, steps.
        max: u64,
    },
}

impl RenderBudget {
    /// A fresh budget.
    pub fn new(limits: RenderLimits) -> Self {
        RenderBudget { limits, num_bytes: 0, num_steps: 0 }
    }

    /// The limits this budget started with.
    pub fn limits(&self) -> RenderLimits {
        self.limits
    }

    /// Bytes written so far.
    pub fn num_bytes(&self) -> usize {
        self.num_bytes
    }

    /// Steps taken so far.
    pub fn num_steps(&self) -> u64 {
        self.num_steps
    }

    /// Bytes that may still be written.
    pub fn remaining_bytes(&self) -> usize {
        self.limits.max_bytes.saturating_sub(self.num_bytes)
    }

    /// Spends `num_bytes` of output written outside a template (default fields, separators), or
    /// fails without spending anything when that would go over.
    pub fn spend_bytes(&mut self, num_bytes: usize) -> Result<(), BudgetExceeded> {
        if num_bytes > self.remaining_bytes() {
            return Err(BudgetExceeded::Bytes { max: self.limits.max_bytes });
        }
        self.num_bytes += num_bytes;
        Ok(())
    }

    /// Fails when `total` bytes, all of them output of this budget's renderings, would be over
    /// it: for text made from rendered parts, such as a JSON body serialised from rendered values.
    pub fn check_total(&self, total: usize) -> Result<(), BudgetExceeded> {
        if total > self.limits.max_bytes {
            return Err(BudgetExceeded::Bytes { max: self.limits.max_bytes });
        }
        Ok(())
    }
}

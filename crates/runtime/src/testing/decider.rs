//! Given/when/then for a pure decider (cqrs-es `TestFramework`, disintegrate
//! `TestHarness`): given a history of events, when a command is decided,
//! then exactly these events follow, or the command is refused for this
//! reason and the history stays as it was.

pub use crate::es::aggregate::Decider;

/// A history of events, folded into state on demand.
pub struct Given<D: Decider>(pub Vec<D::Event>);

/// Starts a test from `history`.
pub fn given<D: Decider>(history: &[D::Event]) -> Given<D> {
    Given(history.to_vec())
}

/// A decision taken on a history, to be checked.
pub struct When<D: Decider> {
    history: Vec<D::Event>,
    decision: Result<Vec<D::Event>, D::Error>,
}

impl<D: Decider> Given<D> {
    pub fn state(&self) -> D::State {
        self.0.iter().fold(D::State::default(), D::evolve)
    }
    pub fn when(&self, cmd: D::Command) -> When<D> {
        When {
            history: self.0.clone(),
            decision: D::decide(&self.state(), cmd),
        }
    }
}

impl<D: Decider> When<D> {
    /// Asserts the events decided; the history with them, to go on with.
    #[track_caller]
    pub fn then(self, expected: &[D::Event]) -> Given<D> {
        assert_eq!(self.decision, Ok(expected.to_vec()));
        Given([self.history, expected.to_vec()].concat())
    }
    /// Asserts the command is refused; the history is unchanged.
    #[track_caller]
    pub fn refused(self, reason: D::Error) -> Given<D> {
        assert_eq!(self.decision, Err(reason));
        Given(self.history)
    }
}

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
    /// The events decided, for a test that looks into them rather than
    /// naming them all; panics when the command was refused.
    #[track_caller]
    pub fn decided(&self) -> &[D::Event] {
        match &self.decision {
            Ok(events) => events,
            Err(reason) => panic!("the command was refused: {reason:?}"),
        }
    }
    /// The history with whatever was decided, to go on with; panics when
    /// the command was refused.
    #[track_caller]
    pub fn accepted(self) -> Given<D> {
        let decided = self.decided().to_vec();
        Given([self.history, decided].concat())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A counter that counts up to 2.
    struct Counter;

    impl Decider for Counter {
        type State = u8;
        type Command = ();
        type Event = u8;
        type Error = &'static str;
        fn decide(state: &u8, _: ()) -> Result<Vec<u8>, &'static str> {
            if *state < 2 {
                Ok(vec![state + 1])
            } else {
                Err("full")
            }
        }
        fn evolve(_: u8, event: &u8) -> u8 {
            *event
        }
    }

    #[test]
    fn an_accepted_decision_is_looked_into_and_gone_on_with_until_refused() {
        let when = given::<Counter>(&[]).when(());
        assert_eq!(when.decided(), &[1]);
        let g = when.accepted().when(()).accepted();
        assert_eq!(g.0, vec![1, 2]);
        assert_eq!(g.state(), 2);
        g.when(()).refused("full");
    }

    #[test]
    #[should_panic(expected = "the command was refused")]
    fn a_refused_decision_has_no_events_to_look_into() {
        given::<Counter>(&[1, 2]).when(()).decided();
    }
}

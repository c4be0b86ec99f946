//! What an established connection does next, decided from its [`Phase`], its activity
//! ([`Activity`]) and the time: the deadline and shutdown policy that server/driver.rs
//! carries out. Pure: no socket, no clock and no atomics of its own; the driver passes
//! `now` and a snapshot of the connection (`ConnState::look`), and acts on the [`Step`].
//! The unit tests below decide every deadline and shutdown case without a socket or a sleep.

use std::time::Duration;

use tokio::time::Instant;

/// Once shutdown began: how long a connection still in its handshake may take to finish
/// it (server/handshake.rs), how long a new session may take to send its first request,
/// and how long a draining connection with nothing in flight has to close by itself.
pub(super) const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// How often a draining connection (shutdown began) looks whether its last request ended:
/// the end of a request is not an event the driver hears of.
pub(super) const DRAIN_LOOK: Duration = Duration::from_millis(100);

/// How long an idle connection asked to end may take to close.
pub(super) const IDLE_CLOSE_GRACE: Duration = Duration::from_secs(5);

/// A connection's activity at one instant (a snapshot taken by `ConnState::look`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Activity {
    /// The last byte read or written, or the end of the last response.
    pub(crate) last_io: Instant,
    /// A response is in flight, or a write waits for the client to read: not idle.
    pub(crate) busy: bool,
    /// The first byte of a request head that is still being read (HTTP/1.1 only).
    pub(crate) head_started: Option<Instant>,
    /// A request has reached the service on this connection.
    pub(crate) first_request: bool,
}

/// The timeouts a connection lives under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timeouts {
    /// No byte moved for this long: an idle connection is asked to end, a busy one closed.
    pub(crate) idle: Duration,
    /// A request head must be complete this long after its first byte (HTTP/1.1).
    pub(crate) header: Option<Duration>,
    /// An idle connection parks (gives back its HTTP state) after this long (HTTP/1.1).
    pub(crate) park_after: Option<Duration>,
}

/// Where a connection is in its life; it decides which deadlines apply and what shutdown
/// does to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Serving requests; shutdown and every deadline apply.
    Serving,
    /// Shutdown began before the first request: it is awaited until `until`, then the
    /// connection drains.
    AwaitingFirstRequest {
        /// When the wait ends.
        until: Instant,
    },
    /// Shutdown asked the connection to end (GOAWAY, `Connection: close`): once nothing is
    /// in flight it has [`SHUTDOWN_GRACE`] to close by itself, then it is closed.
    Draining {
        /// When it was asked.
        since: Instant,
        /// Set when the idle timeout passed while draining: closed then if still open.
        grace_until: Option<Instant>,
    },
    /// Asked to end because it was idle (or to park): closed if it has not by `until`.
    Ending {
        /// When it is closed if still open.
        until: Instant,
        /// Asked to park (HTTP/1.1), not to close.
        parking: bool,
    },
}

/// Why the policy closes a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Closed {
    /// Shutdown: nothing in flight and the client did not close within [`SHUTDOWN_GRACE`].
    AfterShutdown,
    /// Asked to end when idle, it did not within [`IDLE_CLOSE_GRACE`].
    DidNotEnd,
    /// A response in flight (or waiting on the client) moved no byte for the idle timeout.
    Stalled,
    /// A request head did not complete within the header timeout.
    HeaderTimeout,
}

impl Closed {
    /// What the connection's log line says.
    pub(crate) fn why(self) -> &'static str {
        match self {
            Self::AfterShutdown => {
                "closed after shutdown: nothing in flight and the client did not close"
            }
            Self::DidNotEnd => "did not close within the grace period after idling",
            Self::Stalled => "no progress for the idle timeout",
            Self::HeaderTimeout => "request head not complete within the header timeout",
        }
    }
}

/// Why the policy asks the connection to end (hyper's graceful shutdown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ask {
    /// Idle for the park delay: end so that the connection can park (HTTP/1.1).
    Park,
    /// Idle for the idle timeout.
    Idle,
    /// Shutdown began.
    Shutdown,
}

/// What the driver does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Nothing is due: serve, and look again at `look_at` (or when woken).
    Serve {
        /// When to decide again at the latest.
        look_at: Instant,
    },
    /// Ask the connection to end (hyper's graceful shutdown), then decide again.
    AskToEnd(Ask),
    /// The idle timeout passed on a connection already asked to end (counted as idle).
    IdleWhileEnding,
    /// Close the connection now.
    Close(Closed),
}

/// The deadline and shutdown policy of one connection: its phase and timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Policy {
    phase: Phase,
    timeouts: Timeouts,
}

impl Policy {
    /// A connection that starts serving.
    pub(crate) fn new(timeouts: Timeouts) -> Self {
        Self {
            phase: Phase::Serving,
            timeouts,
        }
    }

    /// The phase the connection is in.
    #[cfg(test)]
    pub(crate) fn phase(&self) -> Phase {
        self.phase
    }

    /// Whether shutdown still has to reach this connection (only a serving one listens).
    pub(crate) fn listens_for_shutdown(&self) -> bool {
        self.phase == Phase::Serving
    }

    /// Whether the connection was asked to end so that it parks.
    pub(crate) fn parking(&self) -> bool {
        matches!(self.phase, Phase::Ending { parking: true, .. })
    }

    /// Shutdown began at `now`. A client that connected before it gets its first request
    /// served (then `Connection: close` / GOAWAY), as nginx does: the connection awaits it
    /// for [`SHUTDOWN_GRACE`]; [`Policy::decide`] asks it to end at once when the request
    /// has already come.
    pub(crate) fn shutdown_began(&mut self, now: Instant) {
        if self.phase == Phase::Serving {
            self.phase = Phase::AwaitingFirstRequest {
                until: now + SHUTDOWN_GRACE,
            };
        }
    }

    /// What to do at `now`, given the connection's activity; moves to the phase that the
    /// step begins.
    pub(crate) fn decide(&mut self, now: Instant, activity: &Activity) -> Step {
        match self.phase {
            Phase::Ending { until, .. } => {
                if now >= until {
                    return Step::Close(Closed::DidNotEnd);
                }
                return Step::Serve { look_at: until };
            }
            Phase::Draining { since, grace_until } => {
                if !activity.busy && now >= since.max(activity.last_io) + SHUTDOWN_GRACE {
                    return Step::Close(Closed::AfterShutdown);
                }
                if let Some(until) = grace_until {
                    if now >= until {
                        return Step::Close(Closed::DidNotEnd);
                    }
                    return Step::Serve {
                        look_at: until.min(now + DRAIN_LOOK),
                    };
                }
            }
            Phase::Serving | Phase::AwaitingFirstRequest { .. } => {}
        }
        let park_after = self
            .timeouts
            .park_after
            .filter(|_| self.phase == Phase::Serving);
        let next = match deadline(now, activity, &self.timeouts, park_after) {
            Deadline::Next(at) => at,
            Deadline::Park => {
                self.phase = Phase::Ending {
                    until: now + IDLE_CLOSE_GRACE,
                    parking: true,
                };
                return Step::AskToEnd(Ask::Park);
            }
            Deadline::Idle => {
                let until = now + IDLE_CLOSE_GRACE;
                return match self.phase {
                    Phase::Draining { since, .. } => {
                        self.phase = Phase::Draining {
                            since,
                            grace_until: Some(until),
                        };
                        Step::IdleWhileEnding
                    }
                    _ => {
                        self.phase = Phase::Ending {
                            until,
                            parking: false,
                        };
                        Step::AskToEnd(Ask::Idle)
                    }
                };
            }
            Deadline::Stalled => return Step::Close(Closed::Stalled),
            Deadline::HeaderTimeout => return Step::Close(Closed::HeaderTimeout),
        };
        match self.phase {
            Phase::AwaitingFirstRequest { until } => {
                if activity.first_request || now >= until {
                    self.phase = Phase::Draining {
                        since: now,
                        grace_until: None,
                    };
                    return Step::AskToEnd(Ask::Shutdown);
                }
                Step::Serve {
                    look_at: next.min(until),
                }
            }
            Phase::Draining { .. } => Step::Serve {
                look_at: next.min(now + DRAIN_LOOK),
            },
            Phase::Serving | Phase::Ending { .. } => Step::Serve { look_at: next },
        }
    }
}

/// What the deadlines alone say at `now`.
#[derive(Debug, PartialEq, Eq)]
enum Deadline {
    /// Nothing due before this instant.
    Next(Instant),
    /// Not busy and nothing moved for the idle timeout.
    Idle,
    /// Not busy and nothing moved for the park delay.
    Park,
    /// A request head started and did not complete in time.
    HeaderTimeout,
    /// Busy, but no byte moved for the idle timeout.
    Stalled,
}

fn deadline(
    now: Instant,
    activity: &Activity,
    timeouts: &Timeouts,
    park_after: Option<Duration>,
) -> Deadline {
    let idle_due = activity.last_io + timeouts.idle;
    // A response in flight, or written and waiting for the client to read it (hyper counts
    // a small response as done once it is in its write buffer): never idle, so never
    // parked (a parked connection must hold no buffered bytes); stalled when no byte moves
    // for the idle timeout.
    if activity.busy {
        return if now >= idle_due {
            Deadline::Stalled
        } else {
            Deadline::Next(idle_due)
        };
    }
    if let (Some(head), Some(header)) = (activity.head_started, timeouts.header) {
        let due = head + header;
        if now >= due {
            return Deadline::HeaderTimeout;
        }
        return Deadline::Next(due.min(idle_due));
    }
    if now >= idle_due {
        return Deadline::Idle;
    }
    match park_after.map(|p| activity.last_io + p) {
        Some(park_due) if now >= park_due => Deadline::Park,
        Some(park_due) => Deadline::Next(park_due.min(idle_due)),
        None => Deadline::Next(idle_due),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(60);
    const HEADER: Duration = Duration::from_secs(10);
    const PARK: Duration = Duration::from_millis(100);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn h1() -> Policy {
        Policy::new(Timeouts {
            idle: IDLE,
            header: Some(HEADER),
            park_after: Some(PARK),
        })
    }

    fn h2() -> Policy {
        Policy::new(Timeouts {
            idle: IDLE,
            header: None,
            park_after: None,
        })
    }

    fn quiet(last_io: Instant) -> Activity {
        Activity {
            last_io,
            busy: false,
            head_started: None,
            first_request: true,
        }
    }

    #[test]
    fn an_idle_http1_connection_parks_after_the_delay_and_is_closed_if_it_does_not_end() {
        let t0 = Instant::now();
        let mut p = h1();
        assert_eq!(
            p.decide(t0 + ms(50), &quiet(t0)),
            Step::Serve { look_at: t0 + PARK }
        );
        assert_eq!(p.decide(t0 + PARK, &quiet(t0)), Step::AskToEnd(Ask::Park));
        assert!(p.parking());
        // Asked once; the grace runs, then it is closed.
        let until = t0 + PARK + IDLE_CLOSE_GRACE;
        assert_eq!(
            p.decide(t0 + ms(200), &quiet(t0)),
            Step::Serve { look_at: until }
        );
        assert_eq!(p.decide(until, &quiet(t0)), Step::Close(Closed::DidNotEnd));
    }

    #[test]
    fn an_idle_http2_connection_never_parks_and_is_asked_to_end_at_the_idle_timeout() {
        let t0 = Instant::now();
        let mut p = h2();
        assert_eq!(
            p.decide(t0 + ms(500), &quiet(t0)),
            Step::Serve { look_at: t0 + IDLE }
        );
        assert_eq!(p.decide(t0 + IDLE, &quiet(t0)), Step::AskToEnd(Ask::Idle));
        assert!(!p.parking());
        assert_eq!(
            p.phase(),
            Phase::Ending {
                until: t0 + IDLE + IDLE_CLOSE_GRACE,
                parking: false
            }
        );
    }

    #[test]
    fn a_connection_whose_client_does_not_read_is_busy_not_parked_until_it_stalls() {
        let t0 = Instant::now();
        let mut p = h1();
        let busy = Activity {
            busy: true,
            ..quiet(t0)
        };
        assert_eq!(
            p.decide(t0 + ms(500), &busy),
            Step::Serve { look_at: t0 + IDLE }
        );
        assert_eq!(p.decide(t0 + IDLE, &busy), Step::Close(Closed::Stalled));
        // Once a byte moves it is idle again, and parks after the delay.
        let moved = t0 + IDLE;
        assert_eq!(
            p.decide(moved + PARK, &quiet(moved)),
            Step::AskToEnd(Ask::Park)
        );
    }

    #[test]
    fn a_request_head_must_complete_within_the_header_timeout_and_is_not_parked() {
        let t0 = Instant::now();
        let mut p = h1();
        let reading = Activity {
            head_started: Some(t0 + ms(10)),
            ..quiet(t0 + ms(10))
        };
        assert_eq!(
            p.decide(t0 + ms(500), &reading),
            Step::Serve {
                look_at: t0 + ms(10) + HEADER
            }
        );
        assert_eq!(
            p.decide(t0 + ms(10) + HEADER, &reading),
            Step::Close(Closed::HeaderTimeout)
        );
        // Without a header timeout (HTTP/2) a started head is no deadline of its own.
        assert_eq!(
            h2().decide(t0 + ms(500), &reading),
            Step::Serve {
                look_at: t0 + ms(10) + IDLE
            }
        );
    }

    #[test]
    fn shutdown_asks_a_connection_that_was_served_to_end_at_once() {
        let t0 = Instant::now();
        let mut p = h2();
        assert!(p.listens_for_shutdown());
        p.shutdown_began(t0);
        assert!(!p.listens_for_shutdown());
        assert_eq!(p.decide(t0, &quiet(t0)), Step::AskToEnd(Ask::Shutdown));
        assert_eq!(
            p.phase(),
            Phase::Draining {
                since: t0,
                grace_until: None
            }
        );
    }

    #[test]
    fn shutdown_awaits_the_first_request_of_a_new_client_for_the_grace_only() {
        let t0 = Instant::now();
        let mut p = h1();
        p.shutdown_began(t0);
        let fresh = Activity {
            first_request: false,
            ..quiet(t0)
        };
        // Awaited, not parked, looked at again when the wait ends.
        assert_eq!(
            p.decide(t0 + ms(500), &fresh),
            Step::Serve {
                look_at: t0 + SHUTDOWN_GRACE
            }
        );
        // The request came: asked to end (its response carries `Connection: close`).
        let mut served = p;
        assert_eq!(
            served.decide(t0 + ms(600), &quiet(t0)),
            Step::AskToEnd(Ask::Shutdown)
        );
        // It never came: asked to end when the wait is over.
        assert_eq!(
            p.decide(t0 + SHUTDOWN_GRACE, &fresh),
            Step::AskToEnd(Ask::Shutdown)
        );
    }

    #[test]
    fn a_draining_connection_is_closed_once_quiet_for_the_grace_and_never_while_busy() {
        let t0 = Instant::now();
        let mut p = h2();
        p.shutdown_began(t0);
        assert_eq!(p.decide(t0, &quiet(t0)), Step::AskToEnd(Ask::Shutdown));
        // A response still in flight: it looks again every DRAIN_LOOK, never closed.
        let busy = Activity {
            busy: true,
            ..quiet(t0)
        };
        assert_eq!(
            p.decide(t0 + ms(5000), &busy),
            Step::Serve {
                look_at: t0 + ms(5000) + DRAIN_LOOK
            }
        );
        // The response ended at 5 s: the grace counts from then.
        let ended = quiet(t0 + ms(5000));
        assert_eq!(
            p.decide(t0 + ms(5500), &ended),
            Step::Serve {
                look_at: t0 + ms(5500) + DRAIN_LOOK
            }
        );
        assert_eq!(
            p.decide(t0 + ms(5000) + SHUTDOWN_GRACE, &ended),
            Step::Close(Closed::AfterShutdown)
        );
    }

    #[test]
    fn the_idle_timeout_while_draining_is_counted_once_and_closes_after_its_grace() {
        let t0 = Instant::now();
        // An idle timeout shorter than the shutdown grace.
        let mut p = Policy::new(Timeouts {
            idle: ms(500),
            header: None,
            park_after: None,
        });
        p.shutdown_began(t0);
        let busy_until = |at: Instant| Activity {
            busy: true,
            ..quiet(at)
        };
        assert_eq!(p.decide(t0, &busy_until(t0)), Step::AskToEnd(Ask::Shutdown));
        assert_eq!(
            p.decide(t0 + ms(100), &quiet(t0 + ms(100))),
            Step::Serve {
                look_at: t0 + ms(200)
            }
        );
        // Quiet since 100 ms, idle at 600 ms, before the shutdown grace runs out.
        assert_eq!(
            p.decide(t0 + ms(600), &quiet(t0 + ms(100))),
            Step::IdleWhileEnding
        );
        let after = Activity {
            busy: true,
            ..quiet(t0 + ms(100))
        };
        assert_eq!(
            p.decide(t0 + ms(600) + IDLE_CLOSE_GRACE, &after),
            Step::Close(Closed::DidNotEnd)
        );
    }

    #[test]
    fn an_ending_connection_ignores_shutdown_and_its_deadlines_but_its_grace() {
        let t0 = Instant::now();
        let mut p = h2();
        assert_eq!(p.decide(t0 + IDLE, &quiet(t0)), Step::AskToEnd(Ask::Idle));
        p.shutdown_began(t0 + IDLE);
        assert!(matches!(p.phase(), Phase::Ending { .. }));
        let busy = Activity {
            busy: true,
            ..quiet(t0)
        };
        let until = t0 + IDLE + IDLE_CLOSE_GRACE;
        assert_eq!(
            p.decide(t0 + IDLE + ms(1), &busy),
            Step::Serve { look_at: until }
        );
        assert_eq!(p.decide(until, &busy), Step::Close(Closed::DidNotEnd));
    }
}

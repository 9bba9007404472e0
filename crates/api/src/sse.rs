//! `GET /v1/executions/{id}/events`: an execution's history as server-sent
//! events, for consoles and scripts that watch an execution live.
//!
//! Each history event is one SSE event: `id` its `seq` (so a client that
//! reconnects with `Last-Event-ID` resumes after it), `event` its type
//! (`step_succeeded`, …), `data` its JSON as `GET …/history` shows it.
//! Without `follow=true` the stream ends after the events stored so far;
//! with it, it goes on as events are recorded and ends with an `end` event
//! (the execution's JSON) once the execution has finished and every event
//! has been sent. New events are looked for every [`POLL`], or at once when
//! the execution finishes; a comment every 15 s keeps idle proxies from
//! closing the connection. The server's shutdown ends the stream.
//!
//! `GET /v1/events` is the list's: the newest `limit` executions matching
//! `status` and `definition` (as `GET /v1/executions` lists them), one
//! `execution` event for each when the stream starts, then one whenever an
//! execution enters that page or its status or `updated_at` changes (looked
//! for every [`LIST_POLL`]). An execution that has left the page (older
//! than the newest `limit`) is no longer watched.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use serde::Deserialize;

use crate::error::ApiError;
use crate::{execution_json, history_event_json, AppState, PathParam};

/// How often a followed execution's new events are looked for.
const POLL: Duration = Duration::from_millis(250);
/// Events read from the store at a time.
const PAGE: usize = 500;
/// How often the watched list page is read again.
const LIST_POLL: Duration = Duration::from_millis(500);

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventsParams {
    #[serde(default)]
    follow: bool,
    /// Only events with a greater `seq` (as `Last-Event-ID`).
    after: Option<u64>,
}

/// Where one stream is.
struct Cursor {
    st: AppState,
    id: String,
    after: u64,
    follow: bool,
    /// Events read and not yet sent.
    pending: std::collections::VecDeque<Event>,
    done: bool,
}

pub(crate) async fn execution_events(
    State(st): State<AppState>,
    PathParam(id): PathParam,
    headers: HeaderMap,
    q: Result<Query<EventsParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let Query(q) = q.map_err(ApiError::from_query)?;
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.trim().parse::<u64>().map_err(|_| {
                ApiError::bad_request(
                    "invalid_parameter",
                    format!("Last-Event-ID `{v}` is not an event's seq"),
                )
            })
        })
        .transpose()?;
    // An unknown execution is a 404 before the stream starts.
    st.engine.get(&id).await?;
    let cursor = Cursor {
        st,
        id,
        after: resume.or(q.after).unwrap_or(0),
        follow: q.follow,
        pending: Default::default(),
        done: false,
    };
    let events = stream::unfold(cursor, |mut c| async move {
        let event = c.next().await?;
        Some((Ok(event), c))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

impl Cursor {
    /// The next event to send; `None` ends the stream.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(e);
            }
            if self.done || *self.st.stopping.borrow() {
                return None;
            }
            // Read whether it has finished first: events recorded before
            // the finish are then all in the page that follows.
            let finished = match self.st.engine.get(&self.id).await {
                Ok(rec) => rec.status.is_terminal().then_some(rec),
                Err(e) => return Some(self.fail(&e.to_string())),
            };
            let page = match self
                .st
                .engine
                .store()
                .history_page(&self.id, self.after, PAGE)
                .await
            {
                Ok(page) => page,
                Err(e) => return Some(self.fail(&e.to_string())),
            };
            let full = page.len() == PAGE;
            for h in &page {
                self.after = h.seq;
                let data = history_event_json(h);
                self.pending.push_back(
                    Event::default()
                        .id(h.seq.to_string())
                        .event(h.event.kind.name())
                        .data(data.to_string()),
                );
            }
            if full {
                continue; // more stored: send them before looking again
            }
            if !self.follow {
                self.done = true;
                continue;
            }
            if let Some(rec) = finished {
                self.done = true;
                self.pending.push_back(
                    Event::default()
                        .event("end")
                        .data(execution_json(&rec).to_string()),
                );
                continue;
            }
            if self.pending.is_empty() {
                // Nothing new: wait a moment, or less if it finishes.
                let _ = tokio::time::timeout(POLL, self.st.engine.wait(&self.id, POLL)).await;
            }
        }
    }
}

impl Cursor {
    /// A store or engine error in the middle of a stream (the status line
    /// has been sent): an `error` event, then the stream ends.
    fn fail(&mut self, message: &str) -> Event {
        self.done = true;
        Event::default().event("error").data(message)
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListEventsParams {
    status: Option<String>,
    definition: Option<String>,
    started_after: Option<String>,
    started_before: Option<String>,
    limit: Option<usize>,
}

/// Where one list stream is: what it last sent of each watched execution.
struct Watch {
    st: AppState,
    filter: sagaflow_store::ListFilter,
    seen: std::collections::HashMap<String, (sagaflow_core::Status, u64)>,
    pending: std::collections::VecDeque<Event>,
    first: bool,
}

pub(crate) async fn list_events(
    State(st): State<AppState>,
    q: Result<Query<ListEventsParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let Query(q) = q.map_err(ApiError::from_query)?;
    let watch = Watch {
        filter: crate::list_filter(
            q.status.as_deref(),
            q.definition,
            (q.started_after.as_deref(), q.started_before.as_deref()),
            q.limit,
            None,
        )?,
        st,
        seen: Default::default(),
        pending: Default::default(),
        first: true,
    };
    let events = stream::unfold(watch, |mut w| async move {
        let event = w.next().await?;
        Some((Ok(event), w))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

impl Watch {
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(e);
            }
            if *self.st.stopping.borrow() {
                return None;
            }
            if !self.first {
                tokio::time::sleep(LIST_POLL).await;
            }
            self.first = false;
            let page = match self.st.engine.store().list_executions(&self.filter).await {
                Ok(page) => page,
                Err(e) => {
                    // Said once; the next poll tries again.
                    self.pending
                        .push_back(Event::default().event("error").data(e.to_string()));
                    continue;
                }
            };
            let mut watched = std::collections::HashMap::new();
            // Oldest first, so that a client applying them in order ends
            // with the page as listed.
            for rec in page.items.iter().rev() {
                let now = (rec.status, rec.updated_at);
                if self.seen.get(&rec.id) != Some(&now) {
                    self.pending.push_back(
                        Event::default()
                            .event("execution")
                            .data(execution_json(rec).to_string()),
                    );
                }
                watched.insert(rec.id.clone(), now);
            }
            self.seen = watched;
        }
    }
}

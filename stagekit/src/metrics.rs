//! Descriptions of the Prometheus metrics more than one stage records: the
//! stage's unit-of-work time, pages given up on, and the queue driver's
//! retries. Each stage describes its own besides.

use metrics::{Unit, describe_counter, describe_histogram};

/// Describes the metrics every stage shares (their HELP lines).
pub fn describe_shared() {
    describe_counter!(
        "pagefleet_pages_failed_total",
        "Pages given up on, by stage"
    );
    describe_histogram!(
        "pagefleet_stage_seconds",
        Unit::Seconds,
        "Time of each stage's unit of work"
    );
    describe_counter!(
        "pagefleet_ack_retries_total",
        "Acks, naks and terms sent again after no answer"
    );
    describe_counter!(
        "pagefleet_fetch_errors_total",
        "Failed pulls from a consumer, by consumer"
    );
    describe_counter!(
        "pagefleet_transient_retries_total",
        "Messages left for redelivery after a transient fault, by what failed"
    );
    describe_counter!(
        "pagefleet_state_bytes_written_total",
        Unit::Bytes,
        "Bytes written to the jobs bucket (job states and page records)"
    );
    describe_counter!(
        "pagefleet_state_conflicts_total",
        "Job-state writes that lost a race for the job's revision and read it again"
    );
}

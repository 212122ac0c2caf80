//! The simulated devices: each on its own gRPC connection, publishing over `Connect` in a closed or open loop.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use hookwire_client::proto::kernel_message::Kind;
use hookwire_client::{AdminClient, DeviceClient};

/// Connects a device per token, spread across `endpoints` in turn, and starts its publishing loop, counting into
/// `template`'s counters: open loop at `rate` events/s each when given, else closed loop with `window` publishes in
/// flight each.
pub(super) async fn spawn_publishers(
    endpoints: &[String],
    tokens: Vec<String>,
    template: &Publisher,
    rate: Option<f64>,
    window: usize,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<anyhow::Result<()>>>> {
    let mut publishers = Vec::with_capacity(tokens.len());
    for (index, token) in tokens.into_iter().enumerate() {
        let kernel = index % endpoints.len();
        let device = DeviceClient::connect(&endpoints[kernel], &token).await?;
        let publisher = Publisher { kernel, ..template.clone() };
        let window = window.max(1);
        publishers.push(tokio::spawn(async move {
            match rate {
                Some(rate) => publisher.open_loop(device, rate).await,
                None => publisher.closed_loop(device, window).await,
            }
        }));
    }
    Ok(publishers)
}

/// One device's publishing loop.
#[derive(Clone)]
pub(super) struct Publisher {
    pub(super) epoch: Instant,
    pub(super) deadline: tokio::time::Instant,
    pub(super) limit: Option<u64>,
    pub(super) num_sent: Arc<AtomicU64>,
    pub(super) num_acked: Arc<AtomicU64>,
    pub(super) num_errors: Arc<AtomicU64>,
    /// The index of the kernel the device publishes to, which its events carry to the receiver.
    pub(super) kernel: usize,
}

impl Publisher {
    /// Claims the right to send one more event; false once the time or the count is up.
    fn may_send(&self) -> bool {
        if tokio::time::Instant::now() >= self.deadline {
            return false;
        }
        match self.limit {
            Some(limit) => self.num_sent.fetch_add(1, Ordering::Relaxed) < limit,
            None => true,
        }
    }

    /// An event's data: when it was sent (nanoseconds since the run began) and the kernel it was sent to, which the
    /// receiver reads back from the delivery's body.
    fn stamp(&self) -> String {
        format!("{} {}", self.epoch.elapsed().as_nanos(), self.kernel)
    }

    fn on_message(&self, kind: Option<Kind>) -> bool {
        match kind {
            Some(Kind::Ack(_)) => {
                self.num_acked.fetch_add(1, Ordering::Relaxed);
                true
            }
            Some(Kind::Error(_)) => {
                self.num_errors.fetch_add(1, Ordering::Relaxed);
                true
            }
            _ => false,
        }
    }

    /// Keeps `window` publishes in flight until the time or count is up, then waits for the last acks.
    async fn closed_loop(self, device: DeviceClient, window: usize) -> anyhow::Result<()> {
        let mut session = device.open_session().await?;
        let mut in_flight = 0;
        loop {
            while in_flight < window && self.may_send() {
                session.send_publish("bench", self.stamp()).await?;
                in_flight += 1;
            }
            if in_flight == 0 {
                return Ok(());
            }
            let Some(message) = session.next_message().await? else { bail!("the kernel ended the session") };
            if self.on_message(message.kind) {
                in_flight -= 1;
            }
        }
    }

    /// Publishes at `rate` events per second, reading acks in between.
    async fn open_loop(self, device: DeviceClient, rate: f64) -> anyhow::Result<()> {
        let mut session = device.open_session().await?;
        let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
        let mut next = tokio::time::Instant::now();
        let mut in_flight = 0u64;
        loop {
            if tokio::time::Instant::now() >= next {
                if !self.may_send() {
                    break;
                }
                session.send_publish("bench", self.stamp()).await?;
                in_flight += 1;
                next += interval;
                continue;
            }
            // Reading is safe to cut short: a message that arrives late is kept for the next read.
            if let Ok(message) = tokio::time::timeout_at(next, session.next_message()).await {
                let Some(message) = message? else { bail!("the kernel ended the session") };
                if self.on_message(message.kind) {
                    in_flight -= 1;
                }
            }
        }
        while in_flight > 0 {
            let Some(message) = session.next_message().await? else { bail!("the kernel ended the session") };
            if self.on_message(message.kind) {
                in_flight -= 1;
            }
        }
        Ok(())
    }
}

/// Creates `num` devices in a group, 32 calls at a time, and returns their tokens.
pub(super) async fn create_devices(admin: &AdminClient, group_id: &str, num: usize) -> anyhow::Result<Vec<String>> {
    let mut workers = tokio::task::JoinSet::new();
    let num_workers = 32.min(num.max(1));
    for worker in 0..num_workers {
        let (admin, group_id) = (admin.clone(), group_id.to_owned());
        workers.spawn(async move {
            let mut tokens = Vec::new();
            for index in (worker..num).step_by(num_workers) {
                tokens.push(admin.create_device(group_id.clone(), format!("bench device {index}")).await?.token);
            }
            Ok::<_, anyhow::Error>(tokens)
        });
    }
    let mut tokens = Vec::with_capacity(num);
    while let Some(result) = workers.join_next().await {
        tokens.extend(result??);
    }
    Ok(tokens)
}

//! A kill campaign: three workers share the queues while one of them, chosen at random, is
//! killed with SIGKILL every second or two and started again; a thousand one-artifact tasks
//! go through. Every task must reach SUCCESS and every artifact must be in the published
//! metadata python-tuf trusts. Once with Redis as the broker, once with RabbitMQ (see
//! `restarts.rs` for the same while the services restart).

mod common;

use common::{Services, Transport, campaign};

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_tasks_on_redis_survive_random_kills() {
    let services = Services::new("campaign_redis", Transport::Redis, 5, 5).await;
    campaign::run(&services, "campaign_redis", 5, &mut |_| {}).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_tasks_on_rabbitmq_survive_random_kills() {
    let services = Services::new("campaign_amqp", Transport::Amqp, 6, 6).await;
    campaign::run(&services, "campaign_amqp", 6, &mut |_| {}).await;
}

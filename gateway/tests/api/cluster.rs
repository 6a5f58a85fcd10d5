//! Past one NATS node: a 3-node JetStream cluster, the stream with 3 replicas, `NATS_URL`
//! naming every server. A node killed under load loses nothing: every acknowledged command's
//! events reach the stream, each exactly once.

use std::collections::HashMap;

use super::*;

/// Three clustered nats-servers (JetStream, routes between them), each on free ports with
/// a store of its own.
struct NatsCluster {
    nodes: Vec<Option<std::process::Child>>,
    ports: Vec<u16>,
    _dir: TempDir,
}

impl NatsCluster {
    fn start() -> Self {
        let bin = std::env::var("AURORA_NATS_SERVER_BIN").unwrap_or_else(|_| "nats-server".into());
        let dir = TempDir::new().unwrap();
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let routes: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let mut nodes = Vec::new();
        for i in 0..3 {
            let others: Vec<String> = (0..3)
                .filter(|j| *j != i)
                .map(|j| format!("nats-route://127.0.0.1:{}", routes[j]))
                .collect();
            let store = dir.path().join(format!("n{i}"));
            let conf = dir.path().join(format!("n{i}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "server_name: n{i}\nlisten: 127.0.0.1:{}\n\
                     jetstream {{ store_dir: {:?} }}\n\
                     cluster {{ name: aurora-test, listen: 127.0.0.1:{}, routes: [{}] }}\n",
                    ports[i],
                    store.display().to_string(),
                    routes[i],
                    others.join(", ")
                ),
            )
            .unwrap();
            let child = std::process::Command::new(&bin)
                .arg("-c")
                .arg(&conf)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("{bin}: {e} (scripts/test installs nats-server)"));
            nodes.push(Some(child));
        }
        Self {
            nodes,
            ports,
            _dir: dir,
        }
    }

    /// `nats://…,nats://…,nats://…`.
    fn url(&self) -> String {
        self.ports
            .iter()
            .map(|port| format!("nats://127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn kill(&mut self, port: u16) {
        let i = self
            .ports
            .iter()
            .position(|p| *p == port)
            .expect("a node's port");
        let mut child = self.nodes[i].take().expect("a running node");
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for child in self.nodes.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_node_killed_under_load_loses_no_acknowledged_event() {
    let mut cluster = NatsCluster::start();
    let url = cluster.url();
    // The cluster takes a moment to elect its JetStream leader: until then a stream with 3
    // replicas cannot be made.
    let prefix = testkit::unique_prefix();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let subjects = aurora_nats::Subjects::new(prefix.clone());
        match aurora_nats::jetstream::JetStreamBus::connect(&url, subjects, 3).await {
            Ok(_) => break,
            Err(error) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "no JetStream cluster: {error}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let app = spawn_app_with(Mode::Production, |c| {
        c.nats_url = Some(url.clone());
        c.nats_prefix = prefix.clone();
        c.nats_replicas = 3;
    })
    .await;
    let client = app.state.bus.nats_client().expect("on NATS");
    let js = async_nats::jetstream::new(client.clone());
    let stream_name = aurora_nats::Subjects::new(prefix.clone()).stream();
    let info = js
        .get_stream(&stream_name)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .clone();
    assert_eq!(info.config.num_replicas, 3, "AURORA_NATS_REPLICAS");

    // Load: clients create runs, and keep what they were told.
    let acknowledged = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let stop = CancellationToken::new();
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (http, url, acked, stop) = (
            app.client.clone(),
            app.url("/api/v1/runs"),
            acknowledged.clone(),
            stop.clone(),
        );
        clients.push(tokio::spawn(async move {
            let mut unknown = 0;
            while !stop.is_cancelled() {
                match http.post(&url).json(&valid_run()).send().await {
                    Ok(response) if response.status() == StatusCode::CREATED => {
                        let body: Value = response.json().await.unwrap();
                        acked
                            .lock()
                            .unwrap()
                            .push(body["id"].as_str().unwrap().to_string());
                    }
                    // Refused or failed while the bus fails over: not acknowledged.
                    _ => unknown += 1,
                }
            }
            unknown
        }));
    }
    let acked = || acknowledged.lock().unwrap().len();
    operations::eventually("some runs are acknowledged", || async { acked() >= 40 }).await;
    // Kill the node this replica is connected to.
    let connected = client.server_info().port;
    cluster.kill(connected);
    let at_kill = acked();
    operations::eventually("more runs are acknowledged after the kill", || async {
        acked() >= at_kill + 40
    })
    .await;
    stop.cancel();
    let mut unknown = 0;
    for client in clients {
        unknown += client.await.unwrap();
    }
    assert_ne!(
        client.server_info().port,
        connected,
        "reconnected to another node"
    );

    // Every stored event reaches the stream exactly once.
    let stored = app.stored_events().await;
    let js = async_nats::jetstream::new(client.clone());
    // The stream's message count; None while a request fails (the cluster is one node short
    // and may be moving the stream's leader).
    let messages = || {
        let (js, name) = (js.clone(), stream_name.clone());
        async move {
            let mut stream = js.get_stream(&name).await.ok()?;
            Some(stream.info().await.ok()?.state.messages as i64)
        }
    };
    operations::eventually("the relay has published every stored event", || async {
        messages().await.is_some_and(|n| n >= stored)
    })
    .await;
    let bus = app.state.bus.shared();
    let filter = bus.subjects().all_events();
    // Making the consumer is a request to a cluster that may still be moving leaders: it is
    // asked again until it answers, like the stream's count above.
    let deadline = std::time::Instant::now() + WAIT;
    let mut deliveries = loop {
        match bus.consume("cluster-check", &filter).await {
            Ok(deliveries) => break deliveries,
            Err(error) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "no consumer on the stream: {error}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut requested: HashMap<String, usize> = HashMap::new();
    for _ in 0..stored {
        let delivery = tokio::time::timeout(WAIT, deliveries.next())
            .await
            .expect("every event within WAIT")
            .unwrap()
            .unwrap();
        *seen.entry(delivery.event.id.clone()).or_default() += 1;
        if delivery.event.event_type.contains(".RunRequested.") {
            *requested
                .entry(delivery.event.aggregateid.clone())
                .or_default() += 1;
        }
        delivery.ack().await.unwrap();
    }
    let deadline = std::time::Instant::now() + WAIT;
    let counted = loop {
        if let Some(n) = messages().await {
            break n;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the stream never answered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(counted, stored, "the stream holds every stored event, once");
    assert!(seen.values().all(|n| *n == 1), "no event twice");
    let acknowledged = acknowledged.lock().unwrap().clone();
    for id in &acknowledged {
        assert_eq!(
            requested.get(id),
            Some(&1),
            "acknowledged run {id} in the stream once"
        );
    }
    eprintln!(
        "{} runs acknowledged, {unknown} refused or failed during the failover, {stored} events",
        acknowledged.len()
    );
    app.stop().await;
}

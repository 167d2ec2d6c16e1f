//! Registers `com.example.add`, calls it, and leaves.
//!
//! ```text
//! cargo run -p wamp-client --example add -- [URL] [REALM] [json|msgpack]
//! ```
//! Defaults: `ws://127.0.0.1:8080/ws`, `realm1`, and msgpack falling back to json.

use wamp_client::{CallError, Client, Invocation, Serializer, Value};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let mut argv = std::env::args().skip(1);
    let url = argv
        .next()
        .unwrap_or_else(|| "ws://127.0.0.1:8080/ws".into());
    let realm = argv.next().unwrap_or_else(|| "realm1".into());
    let mut builder = Client::builder(url).realm(realm);
    if let Some(name) = argv.next() {
        let s = Serializer::from_name(&name).ok_or("serializer must be json or msgpack")?;
        builder = builder.serializer(s);
    }

    let client = builder.connect().await?;
    println!(
        "joined {} as session {} using {}",
        client.realm(),
        client.session_id(),
        client.serializer().subprotocol()
    );

    let reg = client
        .register("com.example.add", |inv: Invocation| async move {
            let (a, b): (i64, i64) = inv.decode_args()?;
            Ok::<_, CallError>(Value::from(a + b))
        })
        .await?;
    println!("registered com.example.add (registration {})", reg.id());

    let sum: i64 = client.call("com.example.add").args([2, 3]).result().await?;
    println!("com.example.add(2, 3) = {sum}");

    match client.call("com.example.add").args(["two", "three"]).await {
        Err(e) => println!("com.example.add(\"two\", \"three\") failed as expected: {e}"),
        Ok(r) => println!("unexpected result {:?}", r.args),
    }

    reg.unregister().await?;
    let closed = client.leave().await?;
    println!("left: {}", closed.reason);
    Ok(())
}

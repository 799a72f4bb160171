//! `make dev`: moto, the template's resources, and the dev server on 127.0.0.1:$PORT.
//! Ctrl-C stops everything it started.

use local_stack::devserver::DevServer;
use local_stack::moto::Moto;
use local_stack::template::{self, Template};
use local_stack::{BoxError, LOCAL_REGION, LocalSettings, bootstrap};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    shared::telemetry::init();
    let moto_port = std::env::var("MOTO_PORT")
        .ok()
        .map(|p| p.parse::<u16>())
        .transpose()
        .map_err(|_| "MOTO_PORT must be a port number")?
        .unwrap_or(0);
    let mut moto = Moto::start(moto_port)?;
    let result = run(&moto).await;
    moto.stop();
    result
}

async fn run(moto: &Moto) -> Result<(), BoxError> {
    let settings = LocalSettings::from_env(moto.endpoint())?;
    let template = Template::load(&template::default_path(), LOCAL_REGION)?;
    bootstrap::create_resources(&template, &settings.sdk_config()).await?;
    let server = DevServer::new(&template, &settings)?;
    let _standin =
        local_stack::standin::start(&settings.sdk_config(), server.event_rules()).await?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", settings.port))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{}: {e}", settings.port))?;
    eprintln!(
        "\nchatroom dev server: http://127.0.0.1:{port}   (AWS emulator: {aws})\n\
         try: curl http://127.0.0.1:{port}/health\n\
         token: make token TENANT=acme ROLE=admin\n\
         Ctrl-C stops everything.\n",
        port = settings.port,
        aws = moto.endpoint()
    );
    server
        .serve(listener, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}

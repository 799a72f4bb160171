//! The cold-start reference of `make bench`: the smallest `lambda_http` function, so the
//! functions' start-up is compared with a hello world measured the same way, on the same
//! machine, in the same run.

use lambda_http::{Body, Error, Request, Response, run, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    run(service_fn(|_req: Request| async {
        Ok::<_, Error>(Response::new(Body::from("hello")))
    }))
    .await
}

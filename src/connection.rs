//! One accepted connection, from login to its end: the login (`client::log_in`) decides
//! whether it becomes a pooled session or an admin console session, and this is the one
//! place that knows both, so neither `client` nor `admin` depends on the other.

use std::future::Future;
use std::sync::Arc;

use crate::client::{ConsoleLogin, Entered};
use crate::context::Shared;
use crate::net::Stream;

/// Serves one accepted connection until it ends.
///
/// Not an `async fn`: an async fn keeps its arguments (and every local of the login)
/// in the task for the client's whole life. The login runs in its own boxed future,
/// freed once it is over, so an idle client's task holds little more than its session.
pub fn serve(shared: Arc<Shared>, stream: Stream) -> impl Future<Output = ()> {
    let login = Box::pin(crate::client::log_in(Arc::clone(&shared), stream));
    async move {
        match login.await {
            Some((_count, Entered::Pool(session))) => session.run().await,
            Some((_count, Entered::Console(console))) => serve_console(shared, console).await,
            None => {}
        }
    }
}

async fn serve_console(shared: Arc<Shared>, console: ConsoleLogin) {
    let ConsoleLogin {
        stream,
        role,
        user,
        log,
    } = console;
    let ended = crate::admin::serve(Arc::clone(&shared), stream, role, user, log.id).await;
    log.closing(&shared.settings(), &ended.reason, ended.told);
}

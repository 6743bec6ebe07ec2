//! The routes. Every page takes the flash messages queued for it; every form post checks the
//! session's CSRF token first, then acts, queues a flash message and redirects (303) to a page.

use axum::extract::Form;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Deserialize;
use sessionware::{DeviceId, Error, Session, SessionLayer};
use time::Duration;

use crate::html;

/// The one password of the demo, stated on the sign-in page.
pub(crate) const DEMO_PASSWORD: &str = "demo";

/// Longest accepted user name, in characters.
const MAX_USER_NAME: usize = 40;

/// How long "remember me" keeps a session signed in without use.
const REMEMBER_FOR: Duration = Duration::days(30);

/// What the routes need besides the session.
#[derive(Clone)]
pub(crate) struct Settings {
    /// How recent a sign-in must be for the sensitive page.
    pub(crate) recent: Duration,
}

pub(crate) fn router(
    sessions: SessionLayer,
    prometheus: PrometheusHandle,
    settings: Settings,
) -> Router {
    // Outside the session layer: a scrape reads no session. It refreshes the live-sessions
    // gauge first, so the count costs one store call per scrape, never one per request.
    let layer = sessions.clone();
    let metrics = get(move || {
        let (layer, prometheus) = (layer.clone(), prometheus.clone());
        async move {
            if let Err(error) = layer.count_sessions().await {
                tracing::warn!(%error, "live sessions could not be counted");
            }
            prometheus.render()
        }
    });
    Router::new()
        .route("/", get(home))
        .route("/devices", get(devices))
        .route("/settings", get(settings_page))
        .route("/confirm", post(confirm))
        .route("/login", post(login))
        .route("/count", post(count))
        .route("/devices/revoke", post(revoke))
        .route("/logout", post(logout))
        .route("/logout-everywhere", post(logout_everywhere))
        .layer(Extension(settings))
        .layer(sessions)
        .route("/metrics", metrics)
}

// Missing fields read as empty, so a post without a token is refused by `verify_csrf` (403)
// like one with a wrong token, not by the form parser.
#[derive(Deserialize)]
struct Plain {
    #[serde(default)]
    csrf: String,
}

#[derive(Deserialize)]
struct SignIn {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
    /// The "remember me" box: present (`on`) only when ticked.
    #[serde(default)]
    remember: Option<String>,
}

#[derive(Deserialize)]
struct Confirm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    password: String,
}

#[derive(Deserialize)]
struct Revoke {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    device: String,
}

async fn home(session: Session) -> Result<Html<String>, Error> {
    let flashes = session.take_flashes();
    let csrf = session.csrf_token()?;
    let user = session.user();
    let body = match &user {
        Some(_) => html::counter(session.get::<u64>("count")?.unwrap_or(0), &csrf),
        None => html::sign_in(&csrf, DEMO_PASSWORD),
    };
    Ok(html::page(user.as_deref(), &csrf, &flashes, &body))
}

async fn devices(session: Session) -> Result<Response, Error> {
    let Some(user) = session.user() else {
        session.flash("Sign in to see your devices.");
        return Ok(Redirect::to("/").into_response());
    };
    let flashes = session.take_flashes();
    let csrf = session.csrf_token()?;
    let mut devices = session.devices().await?;
    // This browser first; the sort is stable, so the others stay newest use first.
    devices.sort_by_key(|d| !d.current);
    let body = html::devices(&devices, &csrf, time::OffsetDateTime::now_utc());
    Ok(html::page(Some(&user), &csrf, &flashes, &body).into_response())
}

/// Open while the sign-in is recent; otherwise asks for the password again ("sudo mode").
async fn settings_page(
    session: Session,
    Extension(settings): Extension<Settings>,
) -> Result<Response, Error> {
    let Some(user) = session.user() else {
        session.flash("Sign in to see your settings.");
        return Ok(Redirect::to("/").into_response());
    };
    let flashes = session.take_flashes();
    let csrf = session.csrf_token()?;
    let window = settings.recent.whole_seconds();
    let body = match session.signed_in_at() {
        Some(at) if session.signed_in_within(settings.recent) => {
            let ago = (time::OffsetDateTime::now_utc() - at)
                .whole_seconds()
                .max(0);
            html::settings(ago, window)
        }
        _ => html::confirm(&csrf, window),
    };
    Ok(html::page(Some(&user), &csrf, &flashes, &body).into_response())
}

async fn confirm(session: Session, Form(form): Form<Confirm>) -> Result<Redirect, Error> {
    session.verify_csrf(&form.csrf)?;
    if session.user().is_none() {
        session.flash("Sign in to see your settings.");
        return Ok(Redirect::to("/"));
    }
    if form.password == DEMO_PASSWORD {
        session.confirm_sign_in();
        session.flash("Sign-in confirmed.");
    } else {
        session.flash(format!(
            "Wrong password: the demo password is \"{DEMO_PASSWORD}\"."
        ));
    }
    Ok(Redirect::to("/settings"))
}

async fn login(session: Session, Form(form): Form<SignIn>) -> Result<Redirect, Error> {
    session.verify_csrf(&form.csrf)?;
    let user = form.user.trim();
    if user.is_empty() || user.chars().count() > MAX_USER_NAME {
        session.flash(format!(
            "Choose a user name of 1 to {MAX_USER_NAME} characters."
        ));
    } else if form.password != DEMO_PASSWORD {
        session.flash(format!(
            "Wrong password: the demo password is \"{DEMO_PASSWORD}\"."
        ));
    } else {
        session.login(user);
        if form.remember.is_some() {
            session.remember_for(REMEMBER_FOR);
        }
        session.flash(format!("Signed in as {user}."));
    }
    Ok(Redirect::to("/"))
}

async fn count(session: Session, Form(form): Form<Plain>) -> Result<Redirect, Error> {
    session.verify_csrf(&form.csrf)?;
    if session.user().is_none() {
        session.flash("Sign in to count.");
        return Ok(Redirect::to("/"));
    }
    // Two tabs counting at once both count: the store adds 1 itself.
    let n = session.increment("count", 1)?;
    session.flash(format!("Counted to {n}."));
    Ok(Redirect::to("/"))
}

async fn revoke(session: Session, Form(form): Form<Revoke>) -> Result<Response, Error> {
    session.verify_csrf(&form.csrf)?;
    // Parsed here rather than by the form, so a post without a token is still a 403 first.
    let device: DeviceId = match form.device.parse() {
        Ok(device) => device,
        Err(invalid) => return Ok(sessionware::InvalidDeviceId::into_response(invalid)),
    };
    let to = if !session.revoke(&device).await? {
        session.flash("That device was already signed out.");
        "/devices"
    } else if session.user().is_none() {
        // Revoking the current device is a sign-out, which leaves no user to show devices for.
        session.flash("Signed out this device.");
        "/"
    } else {
        session.flash("Signed out that device.");
        "/devices"
    };
    Ok(Redirect::to(to).into_response())
}

async fn logout(session: Session, Form(form): Form<Plain>) -> Result<Redirect, Error> {
    session.verify_csrf(&form.csrf)?;
    session.logout();
    // Queued after `logout`, so it lands in the fresh anonymous session.
    session.flash("Signed out.");
    Ok(Redirect::to("/"))
}

async fn logout_everywhere(session: Session, Form(form): Form<Plain>) -> Result<Redirect, Error> {
    session.verify_csrf(&form.csrf)?;
    let ended = session.revoke_all().await?;
    session.flash(match ended {
        1 => "Signed out everywhere: 1 session ended.".to_owned(),
        n => format!("Signed out everywhere: {n} sessions ended."),
    });
    Ok(Redirect::to("/"))
}

//! WeChat customer media: `cgi-bin/media/get` with the account's shared token, its JSON
//! answers (errors, a video's `video_url`), the bytes through the SSRF-guarded fetcher.

use serde_json::Value;

use super::super::read_small;
use super::Client;
use crate::domain::outbound::Attempt;
use crate::ports::{FetchBody, MediaFetcher, RoutedChannel};

/// The largest JSON answer `media/get` gives instead of a file (an error, a `video_url`).
const MEDIA_ANSWER_CAP: usize = 16 * 1024;

/// Whether a `media/get` answer is JSON rather than the file (WeChat sends its errors and
/// video links as `application/json` or `text/plain`).
fn is_json_answer(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|c| c.starts_with("application/json") || c.starts_with("text/plain"))
}

/// What a JSON `media/get` answer says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaAnswer {
    /// A video: its download link.
    VideoUrl(String),
    /// The token was refused (40001/40014/42001).
    RefreshToken,
    /// No file: the reason for the agent.
    Unavailable(String),
}

/// Reads a JSON `media/get` answer (pure).
pub fn media_answer(body: &[u8]) -> MediaAnswer {
    let Ok(json) = serde_json::from_slice::<Value>(body) else {
        return MediaAnswer::Unavailable(
            "WeChat could not give the media: no file in the answer".into(),
        );
    };
    if let Some(url) = json["video_url"].as_str().filter(|u| !u.is_empty()) {
        return MediaAnswer::VideoUrl(url.to_owned());
    }
    match json["errcode"].as_i64() {
        Some(40001 | 40014 | 42001) => MediaAnswer::RefreshToken,
        code => MediaAnswer::Unavailable(
            format!(
                "WeChat could not give the media: {} {}",
                code.map_or_else(|| "no file in the answer".to_owned(), |c| c.to_string()),
                json["errmsg"].as_str().unwrap_or("")
            )
            .trim_end()
            .to_owned(),
        ),
    }
}

/// A video link as fetched: WeChat hands out `http://` links; anything but the local
/// sandbox is asked over https (the fetch guard allows nothing else).
fn video_link(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed)
            if parsed.scheme() == "http"
                && !matches!(parsed.host_str(), Some("127.0.0.1" | "localhost" | "[::1]")) =>
        {
            let _ = parsed.set_scheme("https");
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

impl Client<'_> {
    /// A customer's file behind a WeChat `media_id` (`cgi-bin/media/get`, with the
    /// deployment's token): the file's body, or for a video the file behind the
    /// `video_url` WeChat answers with. Every request goes through `fetcher` (the SSRF
    /// guard); a refused token is replaced once.
    ///
    /// # Errors
    /// Why the file is unavailable, for the agent (tokens never appear in it).
    pub async fn open_media<F: MediaFetcher>(
        &self,
        fetcher: &F,
        channel: &RoutedChannel,
        media_id: &str,
    ) -> Result<F::Body, String> {
        let mut stale: Option<String> = None;
        for _ in 0..2 {
            let token =
                self.token(channel, stale.as_deref())
                    .await
                    .map_err(|failed| match failed {
                        Attempt::Failed(e) => {
                            format!("WeChat gave no access token: {} ({})", e.reason, e.code)
                        }
                        _ => "WeChat could not be reached for an access token".to_owned(),
                    })?;
            let mut url = url::Url::parse(&format!("{}/cgi-bin/media/get", self.base))
                .map_err(|_| "WECHAT_API_URL is not a URL".to_owned())?;
            url.query_pairs_mut()
                .append_pair("access_token", &token)
                .append_pair("media_id", media_id);
            let mut body = fetcher
                .get(url.as_str(), None)
                .await
                .map_err(|reason| format!("the download failed: {reason}"))?;
            if !is_json_answer(body.content_type()) {
                return Ok(body);
            }
            let answer = read_small(&mut body, MEDIA_ANSWER_CAP).await?;
            match media_answer(&answer) {
                MediaAnswer::VideoUrl(video) => {
                    return fetcher
                        .get(&video_link(&video), None)
                        .await
                        .map_err(|reason| format!("the video download failed: {reason}"));
                }
                MediaAnswer::RefreshToken => stale = Some(token),
                MediaAnswer::Unavailable(reason) => return Err(reason),
            }
        }
        Err("WeChat refused the account's access token twice".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_get_json_answers_are_read() {
        assert_eq!(
            media_answer(br#"{"video_url":"http://203.205.1.1/v.mp4"}"#),
            MediaAnswer::VideoUrl("http://203.205.1.1/v.mp4".into())
        );
        assert_eq!(
            media_answer(br#"{"errcode":42001,"errmsg":"access_token expired"}"#),
            MediaAnswer::RefreshToken
        );
        let MediaAnswer::Unavailable(reason) =
            media_answer(br#"{"errcode":40007,"errmsg":"invalid media_id"}"#)
        else {
            panic!("unavailable")
        };
        assert_eq!(
            reason,
            "WeChat could not give the media: 40007 invalid media_id"
        );
        assert!(matches!(
            media_answer(b"<html>"),
            MediaAnswer::Unavailable(_)
        ));
    }

    #[test]
    fn video_links_are_fetched_over_https_except_from_the_local_sandbox() {
        assert_eq!(
            video_link("http://vweixinf.tc.qq.com/v.mp4?x=1"),
            "https://vweixinf.tc.qq.com/v.mp4?x=1"
        );
        assert_eq!(
            video_link("http://127.0.0.1:4000/files/v"),
            "http://127.0.0.1:4000/files/v"
        );
        assert_eq!(video_link("https://a.qpic.cn/v"), "https://a.qpic.cn/v");
    }
}

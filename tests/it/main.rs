//! Integration tests: the functions over HTTP through the dev server, against moto.

mod auth;
mod bot_view;
mod bots;
mod bots_hostile;
mod channels;
mod customers;
mod events;
mod hostile;
mod inbound;
mod limits;
mod local_stack;
mod media;
mod outbound;
mod reads;
mod review;
mod schedules;
mod schedules_hostile;
mod standin;
mod statuses;
mod templates;
mod tenancy;
mod webhooks;
mod wechat_tokens;
mod workspace;
mod workspace_hostile;
mod workspace_settings;

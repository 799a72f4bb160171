//! What a message costs in AWS: the measured usage of its invocations priced at the
//! us-east-1 on-demand list prices (first tiers, no free tier).

use crate::capacity::Units;

/// When the prices below were last checked.
pub const PRICES_CHECKED: &str = "2026-11-30";

/// Where they come from.
pub const PRICE_SOURCES: &[&str] = &[
    "https://aws.amazon.com/api-gateway/pricing/",
    "https://aws.amazon.com/lambda/pricing/",
    "https://aws.amazon.com/dynamodb/pricing/on-demand/",
    "https://aws.amazon.com/eventbridge/pricing/",
    "https://aws.amazon.com/cloudwatch/pricing/",
];

/// Lambda memory of every function (template.yaml `Globals`), in MB.
pub const LAMBDA_MEMORY_MB: f64 = 128.0;

/// API Gateway HTTP APIs meter requests in 512 KB increments.
pub const HTTP_API_METERING_BYTES: u64 = 512 * 1024;

/// us-east-1 on-demand list prices in USD.
#[derive(Debug, Clone, Copy)]
pub struct Prices {
    /// API Gateway HTTP API, per million requests (first 300 million a month).
    pub http_api_per_million: f64,
    /// Lambda, per million requests.
    pub lambda_requests_per_million: f64,
    /// Lambda duration per GB-second, arm64 (first 7.5 billion GB-s a month).
    pub lambda_gb_second_arm64: f64,
    /// Lambda duration per GB-second, x86_64 (first 6 billion GB-s a month).
    pub lambda_gb_second_x86: f64,
    /// DynamoDB on-demand, per million write request units (Standard table class).
    pub dynamodb_write_per_million: f64,
    /// DynamoDB on-demand, per million read request units (Standard table class).
    pub dynamodb_read_per_million: f64,
    /// EventBridge custom events, per million (64 KB chunks).
    pub eventbridge_per_million: f64,
    /// CloudWatch Logs ingestion of Lambda logs, per GB (first tier, Standard class).
    pub logs_per_gb: f64,
}

impl Prices {
    /// The us-east-1 list prices as of [`PRICES_CHECKED`].
    pub const US_EAST_1: Self = Self {
        http_api_per_million: 1.00,
        lambda_requests_per_million: 0.20,
        lambda_gb_second_arm64: 0.000_013_333_4,
        lambda_gb_second_x86: 0.000_016_666_7,
        dynamodb_write_per_million: 0.625,
        dynamodb_read_per_million: 0.125,
        eventbridge_per_million: 1.00,
        logs_per_gb: 0.50,
    };

    /// Lambda duration price per billed millisecond at [`LAMBDA_MEMORY_MB`].
    pub fn lambda_per_ms(&self, arch: Arch) -> f64 {
        let per_gb_second = match arch {
            Arch::Arm64 => self.lambda_gb_second_arm64,
            Arch::X86_64 => self.lambda_gb_second_x86,
        };
        per_gb_second * LAMBDA_MEMORY_MB / 1024.0 / 1000.0
    }
}

/// Lambda architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// Graviton (what template.yaml deploys).
    Arm64,
    /// x86_64.
    X86_64,
}

/// What one message uses, summed over every invocation it causes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// API Gateway metered requests.
    pub api_requests: f64,
    /// Lambda invocations.
    pub invocations: f64,
    /// Billed Lambda milliseconds (each invocation rounded up to 1 ms).
    pub billed_ms: f64,
    /// DynamoDB capacity units.
    pub units: Units,
    /// EventBridge billed events.
    pub events: f64,
    /// Bytes of log lines written.
    pub log_bytes: f64,
}

impl Usage {
    /// Adds another invocation's usage.
    pub fn add(&mut self, other: &Usage) {
        self.api_requests += other.api_requests;
        self.invocations += other.invocations;
        self.billed_ms += other.billed_ms;
        self.units += other.units;
        self.events += other.events;
        self.log_bytes += other.log_bytes;
    }
}

/// USD per million messages, by service.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Bill {
    /// API Gateway.
    pub api_gateway: f64,
    /// Lambda request charge.
    pub lambda_requests: f64,
    /// Lambda duration.
    pub lambda_duration: f64,
    /// DynamoDB reads.
    pub dynamodb_reads: f64,
    /// DynamoDB writes, table and index.
    pub dynamodb_writes: f64,
    /// EventBridge.
    pub eventbridge: f64,
    /// CloudWatch Logs ingestion.
    pub logs: f64,
}

impl Bill {
    /// Prices `usage` (per message) per million messages.
    pub fn of(usage: &Usage, prices: &Prices, arch: Arch) -> Self {
        Self {
            api_gateway: usage.api_requests * prices.http_api_per_million,
            lambda_requests: usage.invocations * prices.lambda_requests_per_million,
            lambda_duration: usage.billed_ms * prices.lambda_per_ms(arch) * 1e6,
            dynamodb_reads: usage.units.read * prices.dynamodb_read_per_million,
            dynamodb_writes: usage.units.writes() * prices.dynamodb_write_per_million,
            eventbridge: usage.events * prices.eventbridge_per_million,
            logs: usage.log_bytes * 1e6 / 1e9 * prices.logs_per_gb,
        }
    }

    /// All services.
    pub fn total(&self) -> f64 {
        self.api_gateway
            + self.lambda_requests
            + self.lambda_duration
            + self.dynamodb_reads
            + self.dynamodb_writes
            + self.eventbridge
            + self.logs
    }

    /// Services with their share, largest first.
    pub fn ranked(&self) -> Vec<(&'static str, f64)> {
        let mut parts = vec![
            ("API Gateway", self.api_gateway),
            ("Lambda requests", self.lambda_requests),
            ("Lambda duration", self.lambda_duration),
            ("DynamoDB reads", self.dynamodb_reads),
            ("DynamoDB writes", self.dynamodb_writes),
            ("EventBridge", self.eventbridge),
            ("CloudWatch Logs", self.logs),
        ];
        parts.sort_by(|a, b| b.1.total_cmp(&a.1));
        parts
    }
}

/// Billed milliseconds of one invocation that ran `ms`.
pub fn billed_ms(ms: f64) -> f64 {
    ms.ceil().max(1.0)
}

/// API Gateway metered requests for a request and answer of these sizes.
pub fn api_requests(request_bytes: usize, response_bytes: usize) -> f64 {
    ((request_bytes + response_bytes) as u64)
        .div_ceil(HTTP_API_METERING_BYTES)
        .max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_128_mb_millisecond_costs_the_listed_per_ms_price() {
        let prices = Prices::US_EAST_1;
        // The pricing page lists $0.0000000021 (x86) and $0.0000000017 (Arm) per ms at 128 MB.
        assert!((prices.lambda_per_ms(Arch::X86_64) - 2.1e-9).abs() < 0.05e-9);
        assert!((prices.lambda_per_ms(Arch::Arm64) - 1.7e-9).abs() < 0.05e-9);
    }

    #[test]
    fn a_message_is_priced_per_million_by_service() {
        let usage = Usage {
            api_requests: 1.0,
            invocations: 1.0,
            billed_ms: 10.0,
            units: Units {
                read: 0.5,
                write: 8.0,
                index_write: 2.0,
            },
            events: 1.0,
            log_bytes: 500.0,
        };
        let bill = Bill::of(&usage, &Prices::US_EAST_1, Arch::Arm64);
        assert_eq!(bill.api_gateway, 1.0);
        assert!((bill.lambda_requests - 0.2).abs() < 1e-12);
        assert!((bill.lambda_duration - 10.0 * 1.666_675e-9 * 1e6).abs() < 1e-6);
        assert!((bill.dynamodb_reads - 0.0625).abs() < 1e-12);
        assert!((bill.dynamodb_writes - 6.25).abs() < 1e-12);
        // 500 bytes a message: 0.5 GB a million.
        assert!((bill.logs - 0.25).abs() < 1e-12);
        assert_eq!(bill.ranked()[0].0, "DynamoDB writes");
    }

    #[test]
    fn lambda_bills_whole_milliseconds_and_http_apis_512_kb_units() {
        assert_eq!(billed_ms(3.2), 4.0);
        assert_eq!(billed_ms(0.1), 1.0);
        assert_eq!(api_requests(2_000, 30), 1.0);
        assert_eq!(api_requests(600 * 1024, 0), 2.0);
    }
}

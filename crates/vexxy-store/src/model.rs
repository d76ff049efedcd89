//! The service's records: organisations, keys, jobs and their states.

use std::{fmt, str::FromStr};

/// A paying tier. Decides whether an organisation may run analyses, its
/// monthly quota and its jobs' priority.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    Free,
    Professional,
    Enterprise,
    Ultimate,
}

impl Tier {
    pub const ALL: [Tier; 4] = [
        Tier::Free,
        Tier::Professional,
        Tier::Enterprise,
        Tier::Ultimate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Free => "free",
            Self::Professional => "professional",
            Self::Enterprise => "enterprise",
            Self::Ultimate => "ultimate",
        }
    }

    /// Runtime analysis is a premium feature.
    pub fn can_analyze(self) -> bool {
        self != Self::Free
    }

    /// Analyses per calendar month (UTC) unless the organisation has its own.
    pub fn default_monthly_quota(self) -> i64 {
        match self {
            Self::Free => 0,
            Self::Professional => 100,
            Self::Enterprise => 1_000,
            Self::Ultimate => 10_000,
        }
    }

    /// Higher runs first: ultimate > enterprise > professional.
    pub fn priority(self) -> i64 {
        match self {
            Self::Free => 0,
            Self::Professional => 10,
            Self::Enterprise => 20,
            Self::Ultimate => 30,
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Tier {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("unknown tier {s:?} (free, professional, enterprise, ultimate)"))
    }
}

/// Where a job is. `queued → running → analyzing → complete | failed |
/// cancelled`; a retry or a lost worker puts it back to `queued`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum JobState {
    Queued,
    Running,
    Analyzing,
    Complete,
    Failed,
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 6] = [
        JobState::Queued,
        JobState::Running,
        JobState::Analyzing,
        JobState::Complete,
        JobState::Failed,
        JobState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Analyzing => "analyzing",
            Self::Complete => "complete",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn is_finished(self) -> bool {
        matches!(self, Self::Complete | Self::Failed | Self::Cancelled)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("unknown job state {s:?}"))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Org {
    pub id: String,
    pub name: String,
    pub tier: Tier,
    /// Overrides the tier's monthly quota.
    pub monthly_quota: Option<i64>,
    /// Signs webhook callbacks (HMAC-SHA256).
    pub webhook_secret: String,
    pub created_at: i64,
    /// Whether its jobs may replace the image's command (`command`).
    pub allow_command_override: bool,
}

impl Org {
    pub fn quota(&self) -> i64 {
        self.monthly_quota
            .unwrap_or_else(|| self.tier.default_monthly_quota())
    }
}

/// Who is calling: the organisation and the key it used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub org: Org,
    pub key_id: String,
    /// The key's name.
    pub key_name: String,
    /// Who the key belongs to, when its creator said.
    pub owner: Option<String>,
}

impl Caller {
    /// The name decisions and audit details give the caller: the key's
    /// owner, else the key's name.
    pub fn who(&self) -> &str {
        self.owner.as_deref().unwrap_or(&self.key_name)
    }
}

/// A job as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    pub id: String,
    pub org_id: String,
    pub image_ref: String,
    pub image_digest: Option<String>,
    /// The submitted request (JSON), everything a worker needs; loaded
    /// only for workers (claims), `None` elsewhere.
    pub request: Option<String>,
    pub callback_url: Option<String>,
    pub priority: i64,
    pub state: JobState,
    pub progress: i64,
    pub phase: Option<String>,
    pub attempts: i64,
    pub max_attempts: i64,
    pub lease_owner: Option<String>,
    pub lease_token: i64,
    pub timeout_ms: i64,
    pub error: Option<String>,
    /// Verdict counts (JSON) once complete.
    pub summary: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub updated_at: i64,
    /// Set when retention removed the job's evidence.
    pub expired_at: Option<i64>,
    /// What the job attached to its image (JSON), when it signed and
    /// attached its VEX.
    pub attestation: Option<String>,
}

/// One state change of a job, for the audit trail and the crash test.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobEvent {
    pub at: i64,
    pub state: JobState,
    pub worker: Option<String>,
    pub attempt: i64,
    pub detail: Option<String>,
}

/// A file an analysis produced, kept in the evidence store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Artifact {
    pub name: String,
    pub digest: String,
    pub size: i64,
    pub media_type: String,
}

/// Migration 13, "credentials": credentials shared by sources (docs/credentials.md).
///
/// - `credentials`: the type's plain fields (`fields`, JSON) apart from its secrets
///   (`secrets`, JSON) and the cached OAuth2 access token, so each secret column can be
///   encrypted whole. `version` grows with every change of a secret or the cached token.
///   `refresh_owner`/`refresh_until` are the lease of the one refresh in flight on the
///   whole cluster.
/// - `sources.credential_id`: the credential a source uses; a credential in use cannot be
///   deleted (the foreign key is the floor under the API's check).
enum CredentialSchema {
    static let sqlite = """
        CREATE TABLE credentials (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            type TEXT NOT NULL,
            fields TEXT NOT NULL,
            secrets TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'needs_reauth')),
            status_reason TEXT,
            access_token TEXT,
            token_expires_at REAL,
            last_refresh_at REAL,
            refresh_count INTEGER NOT NULL DEFAULT 0,
            version INTEGER NOT NULL DEFAULT 0,
            refresh_owner TEXT,
            refresh_until REAL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        );
        ALTER TABLE sources ADD COLUMN credential_id TEXT REFERENCES credentials(id);
        CREATE INDEX sources_by_credential ON sources(credential_id) WHERE credential_id IS NOT NULL;
        """

    static let postgres = [
        """
        CREATE TABLE credentials (
            id text COLLATE "C" PRIMARY KEY,
            name text COLLATE "C" NOT NULL UNIQUE,
            type text NOT NULL,
            fields text NOT NULL,
            secrets text NOT NULL,
            status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'needs_reauth')),
            status_reason text,
            access_token text,
            token_expires_at double precision,
            last_refresh_at double precision,
            refresh_count bigint NOT NULL DEFAULT 0,
            version bigint NOT NULL DEFAULT 0,
            refresh_owner text,
            refresh_until double precision,
            created_at double precision NOT NULL,
            updated_at double precision NOT NULL
        )
        """,
        #"ALTER TABLE sources ADD COLUMN credential_id text COLLATE "C" REFERENCES credentials(id)"#,
        "CREATE INDEX sources_by_credential ON sources(credential_id) WHERE credential_id IS NOT NULL",
    ]
}

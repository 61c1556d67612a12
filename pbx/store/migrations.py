"""Numbered schema migrations, applied in order, each in its own transaction.

Rules: never edit a migration that has shipped; add the next number. The
`schema_migrations` table records which numbers a database has. A database that
has a number this code does not know was written by a newer aiopbx, and opening
it is refused rather than risking writes the newer code would misread.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Sequence

from pbx.errors import StoreError
from pbx.store.database import Database

log = logging.getLogger(__name__)

Migration = tuple[int, str]

MIGRATIONS: tuple[Migration, ...] = (
    (
        1,
        """
        CREATE TABLE settings (
            key   TEXT PRIMARY KEY,
            value TEXT NOT NULL
        ) STRICT;

        -- Passwords are never stored: only HA1 = H(username:realm:password) for
        -- MD5 and SHA-256 (RFC 7616 §3.4.2), and the realm they were made for.
        CREATE TABLE users (
            username     TEXT PRIMARY KEY,
            display_name TEXT,
            realm        TEXT NOT NULL,
            ha1_md5      TEXT NOT NULL,
            ha1_sha256   TEXT NOT NULL,
            created      REAL NOT NULL
        ) STRICT;

        -- One row per registered contact (RFC 3261 §10.3). contact_uri is the
        -- registrar's key for the contact within its AOR; contact is what the
        -- registrar wants back (usually the same string).
        CREATE TABLE bindings (
            aor         TEXT NOT NULL,
            contact_uri TEXT NOT NULL,
            contact     TEXT NOT NULL,
            expires_at  REAL NOT NULL,
            call_id     TEXT NOT NULL,
            cseq        INTEGER NOT NULL,
            user_agent  TEXT,
            source      TEXT NOT NULL,
            instance    TEXT,
            reg_id      INTEGER,
            q           REAL,
            path        TEXT,
            PRIMARY KEY (aor, contact_uri)
        ) STRICT;

        CREATE INDEX bindings_expires_at ON bindings (expires_at);
        """,
    ),
    (
        2,
        """
        -- Call detail records: a row is opened when a call starts and closed when it
        -- ends (in one transaction each), so a call that was up when the process died
        -- is found open at the next start and closed as interrupted.
        CREATE TABLE cdrs (
            id           INTEGER PRIMARY KEY,
            call_id      TEXT NOT NULL,
            caller       TEXT NOT NULL,
            callee       TEXT NOT NULL,
            start        REAL NOT NULL,
            answer       REAL,
            end          REAL,
            disposition  TEXT,
            hangup_cause TEXT
        ) STRICT;

        CREATE INDEX cdrs_start ON cdrs (start);
        CREATE INDEX cdrs_open ON cdrs (end) WHERE end IS NULL;
        """,
    ),
    (
        3,
        """
        -- Call forwarding per extension: a target number (extension or ring group)
        -- for always, busy, and no answer after `no_answer_seconds`.
        CREATE TABLE forwards (
            username          TEXT PRIMARY KEY REFERENCES users (username) ON DELETE CASCADE,
            always            TEXT,
            busy              TEXT,
            no_answer         TEXT,
            no_answer_seconds REAL NOT NULL DEFAULT 20
        ) STRICT;

        -- Ring groups: a number that rings its members all at once or one by one.
        CREATE TABLE ring_groups (
            number       TEXT PRIMARY KEY,
            name         TEXT,
            strategy     TEXT NOT NULL CHECK (strategy IN ('all', 'sequential')),
            ring_seconds REAL NOT NULL
        ) STRICT;

        CREATE TABLE ring_group_members (
            number   TEXT NOT NULL REFERENCES ring_groups (number) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            member   TEXT NOT NULL,
            PRIMARY KEY (number, position)
        ) STRICT;
        """,
    ),
    (
        4,
        """
        -- The IVR configuration (menus, time conditions) as one TOML document,
        -- replaced whole on import; ivr.menu validates it before it is stored.
        CREATE TABLE ivr_config (
            id      INTEGER PRIMARY KEY CHECK (id = 1),
            body    TEXT NOT NULL,
            updated REAL NOT NULL
        ) STRICT;
        """,
    ),
    (
        5,
        """
        -- Call recording per extension, and the file a CDR's recording went to.
        CREATE TABLE recording_modes (
            username TEXT PRIMARY KEY REFERENCES users (username) ON DELETE CASCADE,
            mode     TEXT NOT NULL CHECK (mode IN ('always', 'never'))
        ) STRICT;

        ALTER TABLE cdrs ADD COLUMN recording TEXT;
        """,
    ),
    (
        6,
        """
        -- Voicemail: a mailbox per extension (its PIN stored only as a salted scrypt
        -- hash), and one row per message whose audio is a WAV file under the data
        -- directory. The file is written (and fsynced) before its row is committed.
        CREATE TABLE mailboxes (
            box      TEXT PRIMARY KEY REFERENCES users (username) ON DELETE CASCADE,
            pin_hash TEXT
        ) STRICT;

        CREATE TABLE voicemails (
            id       INTEGER PRIMARY KEY,
            box      TEXT NOT NULL REFERENCES users (username) ON DELETE CASCADE,
            caller   TEXT NOT NULL,
            created  REAL NOT NULL,
            duration REAL NOT NULL,
            path     TEXT NOT NULL,
            folder   TEXT NOT NULL CHECK (folder IN ('new', 'old'))
        ) STRICT;
        CREATE INDEX voicemails_by_box ON voicemails (box, created);

        -- Recording on demand (a feature code during the call) joins always/never;
        -- SQLite cannot change a CHECK in place, so the table is rebuilt.
        CREATE TABLE recording_modes_new (
            username TEXT PRIMARY KEY REFERENCES users (username) ON DELETE CASCADE,
            mode     TEXT NOT NULL CHECK (mode IN ('always', 'never', 'on_demand'))
        ) STRICT;
        INSERT INTO recording_modes_new (username, mode) SELECT username, mode FROM recording_modes;
        DROP TABLE recording_modes;
        ALTER TABLE recording_modes_new RENAME TO recording_modes;
        """,
    ),
    (
        7,
        """
        -- Trusted networks (`pbx trust add CIDR`): never banned as a whole for failed
        -- logins. cidr is the normalized network text (host bits cleared).
        CREATE TABLE trusted_networks (
            cidr    TEXT PRIMARY KEY,
            created REAL NOT NULL
        ) STRICT;
        """,
    ),
    (
        8,
        """
        -- SIP trunks (`pbx trunk add`): providers and other sites the switch registers
        -- to and calls through. The password is kept as it is (the switch answers digest
        -- challenges with it): the file is mode 0600, and nothing logs or lists it.
        -- codecs and inbound_networks are comma-separated lists (normalized CIDRs).
        CREATE TABLE trunks (
            name             TEXT PRIMARY KEY,
            host             TEXT NOT NULL,
            port             INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
            transport        TEXT NOT NULL CHECK (transport IN ('udp', 'tcp')),
            username         TEXT NOT NULL,
            auth_user        TEXT NOT NULL,
            password         TEXT NOT NULL,
            from_user        TEXT NOT NULL,
            from_domain      TEXT NOT NULL,
            register         INTEGER NOT NULL CHECK (register IN (0, 1)),
            expires          INTEGER NOT NULL,
            codecs           TEXT NOT NULL,
            max_channels     INTEGER NOT NULL CHECK (max_channels >= 0),
            caller_id        TEXT NOT NULL,
            inbound_networks TEXT NOT NULL,
            inbound_contact  INTEGER NOT NULL CHECK (inbound_contact IN (0, 1)),
            created          REAL NOT NULL
        ) STRICT;
        """,
    ),
    (
        9,
        """
        -- Outbound routes (issue 12): dial patterns (JSON list of pattern texts, see
        -- pbx.dialpattern), digits to strip and to prepend, a caller-ID rewrite, the
        -- trunk names to try in order (JSON list), emergency routes first.
        CREATE TABLE outbound_routes (
            name      TEXT PRIMARY KEY,
            patterns  TEXT NOT NULL,
            strip     INTEGER NOT NULL DEFAULT 0 CHECK (strip >= 0),
            prepend   TEXT NOT NULL DEFAULT '',
            caller_id TEXT,
            trunks    TEXT NOT NULL,
            emergency INTEGER NOT NULL DEFAULT 0,
            position  INTEGER NOT NULL,
            created   REAL NOT NULL
        ) STRICT;
        """,
    ),
    (
        10,
        """
        -- Conference rooms (`pbx conf add`): a number of the numbering plan, the PIN's
        -- salted scrypt hash (NULL: no PIN), the most members at once.
        CREATE TABLE conferences (
            number      TEXT PRIMARY KEY,
            pin_hash    TEXT,
            max_members INTEGER NOT NULL CHECK (max_members >= 2)
        ) STRICT;
        """,
    ),
    (
        11,
        """
        -- Inbound DIDs (`pbx did add`): a number a provider's INVITE is addressed to, and
        -- what it reaches (ext:1001, group:600, ivr:MENU, conf:8000, vm:1001,
        -- trunk:NAME/NUMBER), checked to exist when added.
        CREATE TABLE dids (
            number  TEXT PRIMARY KEY,
            target  TEXT NOT NULL,
            created REAL NOT NULL
        ) STRICT;
        """,
    ),
    (
        12,
        """
        -- Ring-group overflow (issue 12, multisite): where a group's call goes when no
        -- member answers (all busy, no answer within the ring time, none registered):
        -- a number of the numbering plan, 'vm:BOX' or 'trunk:NAME/NUMBER'; NULL: none.
        ALTER TABLE ring_groups ADD COLUMN overflow TEXT;
        """,
    ),
    (
        13,
        """
        -- A call that left through a trunk names it, and the number sent to it (after
        -- a route's strip/prepend); NULL for calls that stayed inside.
        ALTER TABLE cdrs ADD COLUMN trunk TEXT;
        ALTER TABLE cdrs ADD COLUMN trunk_number TEXT;
        """,
    ),
    (
        14,
        """
        -- The ACD (issue 13). Queues: every field of acd.model.QueueConfig; sets and
        -- mappings as JSON text (join_empty/leave_when_empty: lists of Asterisk condition
        -- names; skills: {"skill": min level}; skill_rules: [{"after", "relax", "drop"}]).
        -- The number is in the numbering plan (pbx/store/numbering.py).
        CREATE TABLE queues (
            name                  TEXT PRIMARY KEY,
            number                TEXT NOT NULL UNIQUE,
            strategy              TEXT NOT NULL CHECK (strategy IN ('ringall', 'leastrecent',
                                  'fewestcalls', 'random', 'rrmemory', 'rrordered', 'linear',
                                  'wrandom', 'longest-idle')),
            ring_seconds          REAL NOT NULL CHECK (ring_seconds > 0),
            retry_seconds         REAL NOT NULL CHECK (retry_seconds >= 0),
            wrapup_seconds        REAL NOT NULL CHECK (wrapup_seconds >= 0),
            max_callers           INTEGER NOT NULL CHECK (max_callers >= 0),
            max_wait_seconds      REAL NOT NULL CHECK (max_wait_seconds >= 0),
            overflow              TEXT,
            join_empty            TEXT NOT NULL DEFAULT '[]',
            leave_when_empty      TEXT NOT NULL DEFAULT '[]',
            service_level_seconds REAL NOT NULL CHECK (service_level_seconds > 0),
            announce_frequency    REAL NOT NULL CHECK (announce_frequency >= 0),
            periodic_announce     TEXT,
            periodic_frequency    REAL NOT NULL CHECK (periodic_frequency >= 0),
            music                 TEXT,
            weight                INTEGER NOT NULL,
            penalty_members_limit INTEGER NOT NULL CHECK (penalty_members_limit >= 0),
            ring_in_use           INTEGER NOT NULL CHECK (ring_in_use IN (0, 1)),
            autopause_after       INTEGER NOT NULL CHECK (autopause_after >= 0),
            skills                TEXT NOT NULL DEFAULT '{}',
            skill_rules           TEXT NOT NULL DEFAULT '[]',
            callback_key          TEXT,
            voicemail_key         TEXT,
            callback_attempts     INTEGER NOT NULL CHECK (callback_attempts >= 0),
            created               REAL NOT NULL
        ) STRICT;

        -- An agent (a user) in a queue with a penalty (FreeSWITCH tier level) and a
        -- configured position; logged_in: the agent takes this queue's calls while
        -- logged in (pbx agent login --queue Q logs into one queue only).
        CREATE TABLE queue_members (
            queue     TEXT NOT NULL REFERENCES queues (name) ON DELETE CASCADE,
            agent     TEXT NOT NULL REFERENCES users (username) ON DELETE CASCADE,
            penalty   INTEGER NOT NULL DEFAULT 0 CHECK (penalty >= 0),
            position  INTEGER NOT NULL DEFAULT 0,
            logged_in INTEGER NOT NULL DEFAULT 1 CHECK (logged_in IN (0, 1)),
            PRIMARY KEY (queue, agent)
        ) STRICT;
        CREATE INDEX queue_members_by_agent ON queue_members (agent);

        -- An agent's live state, persisted so a login or a pause survives a restart.
        CREATE TABLE agents (
            name            TEXT PRIMARY KEY REFERENCES users (username) ON DELETE CASCADE,
            state           TEXT NOT NULL CHECK (state IN ('logged-out', 'available',
                            'ringing', 'on-call', 'wrap-up', 'paused')),
            state_since     REAL NOT NULL,
            pause_reason    TEXT,
            wrapup_seconds  REAL CHECK (wrapup_seconds IS NULL OR wrapup_seconds >= 0),
            skills          TEXT NOT NULL DEFAULT '{}',
            missed_offers   INTEGER NOT NULL DEFAULT 0 CHECK (missed_offers >= 0),
            last_call_end   TEXT NOT NULL DEFAULT '{}',
            calls_taken     TEXT NOT NULL DEFAULT '{}',
            logged_in_since REAL
        ) STRICT;

        -- Roles: who may use supervisor features (listen, whisper, barge).
        ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'agent'
            CHECK (role IN ('agent', 'supervisor', 'admin'));

        -- Callbacks that keep their place: `joined` is when the caller entered the queue.
        CREATE TABLE callbacks (
            id        INTEGER PRIMARY KEY,
            queue     TEXT NOT NULL REFERENCES queues (name) ON DELETE CASCADE,
            call_id   TEXT NOT NULL,
            number    TEXT NOT NULL,
            joined    REAL NOT NULL,
            requested REAL NOT NULL,
            attempts  INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
            state     TEXT NOT NULL CHECK (state IN ('pending', 'done', 'dropped')),
            updated   REAL NOT NULL
        ) STRICT;
        CREATE INDEX callbacks_pending ON callbacks (queue, joined) WHERE state = 'pending';

        -- The queue log (Asterisk queue_log names; data: a JSON object). Never a foreign
        -- key: history outlives the queues and agents it names.
        CREATE TABLE queue_events (
            id      INTEGER PRIMARY KEY,
            time    REAL NOT NULL,
            call_id TEXT NOT NULL,
            queue   TEXT NOT NULL,
            agent   TEXT,
            event   TEXT NOT NULL,
            data    TEXT NOT NULL DEFAULT '{}'
        ) STRICT;
        CREATE INDEX queue_events_by_queue ON queue_events (queue, time);
        CREATE INDEX queue_events_by_agent ON queue_events (agent, time);
        -- For the crash recovery (pbx/store/queue_events.py): callers entered since T, and
        -- each one's later events.
        CREATE INDEX queue_events_by_call ON queue_events (call_id, id);
        CREATE INDEX queue_events_by_event ON queue_events (event, time);
        """,
    ),
    (
        15,
        """
        -- The web console (issue 15): customers matched by the caller's number (E.164),
        -- help-desk tickets, call dispositions, the knowledge base, login sessions.
        CREATE TABLE customers (
            id          INTEGER PRIMARY KEY,
            number      TEXT NOT NULL UNIQUE,
            name        TEXT NOT NULL,
            company     TEXT NOT NULL DEFAULT '',
            email       TEXT NOT NULL DEFAULT '',
            notes       TEXT NOT NULL DEFAULT '',
            external_id TEXT NOT NULL DEFAULT '',
            created     REAL NOT NULL,
            updated     REAL NOT NULL
        ) STRICT;

        -- Which agent was offered which customer (an agent reads only those).
        CREATE TABLE customer_offers (
            customer INTEGER NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
            agent    TEXT NOT NULL,
            call_id  TEXT NOT NULL,
            queue    TEXT NOT NULL DEFAULT '',
            at       REAL NOT NULL,
            PRIMARY KEY (customer, agent, call_id)
        ) STRICT;
        CREATE INDEX customer_offers_by_agent ON customer_offers (agent, at);

        CREATE TABLE tickets (
            id        INTEGER PRIMARY KEY,
            customer  INTEGER REFERENCES customers (id) ON DELETE SET NULL,
            agent     TEXT NOT NULL,
            queue     TEXT NOT NULL DEFAULT '',
            subject   TEXT NOT NULL,
            state     TEXT NOT NULL DEFAULT 'open'
                CHECK (state IN ('open', 'pending', 'escalated', 'solved')),
            opened_at REAL NOT NULL,
            updated   REAL NOT NULL,
            solved_at REAL,
            -- Seconds the ticket should be solved within (the queue's target when opened).
            target    REAL NOT NULL CHECK (target > 0)
        ) STRICT;
        CREATE INDEX tickets_by_agent ON tickets (agent, opened_at);
        CREATE INDEX tickets_by_customer ON tickets (customer, opened_at);

        CREATE TABLE ticket_notes (
            id     INTEGER PRIMARY KEY,
            ticket INTEGER NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
            author TEXT NOT NULL,
            body   TEXT NOT NULL,
            at     REAL NOT NULL
        ) STRICT;
        CREATE INDEX ticket_notes_by_ticket ON ticket_notes (ticket, id);

        -- A call and each agent who took it (an escalated call reaches several).
        CREATE TABLE ticket_calls (
            ticket  INTEGER NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
            call_id TEXT NOT NULL,
            agent   TEXT NOT NULL,
            at      REAL NOT NULL,
            PRIMARY KEY (ticket, call_id, agent)
        ) STRICT;
        CREATE INDEX ticket_calls_by_call ON ticket_calls (call_id);

        -- Per-queue target resolution time of its tickets (seconds).
        CREATE TABLE ticket_targets (
            queue   TEXT PRIMARY KEY,
            seconds REAL NOT NULL CHECK (seconds > 0)
        ) STRICT;

        CREATE TABLE dispositions (
            id       INTEGER PRIMARY KEY,
            call_id  TEXT NOT NULL,
            agent    TEXT NOT NULL,
            queue    TEXT NOT NULL DEFAULT '',
            code     TEXT NOT NULL,
            note     TEXT NOT NULL DEFAULT '',
            customer INTEGER REFERENCES customers (id) ON DELETE SET NULL,
            ticket   INTEGER REFERENCES tickets (id) ON DELETE SET NULL,
            at       REAL NOT NULL
        ) STRICT;
        CREATE INDEX dispositions_by_call ON dispositions (call_id);
        CREATE INDEX dispositions_by_queue ON dispositions (queue, at);
        CREATE INDEX dispositions_by_customer ON dispositions (customer, at);

        CREATE TABLE kb_articles (
            id      INTEGER PRIMARY KEY,
            title   TEXT NOT NULL,
            body    TEXT NOT NULL,
            tags    TEXT NOT NULL DEFAULT '',
            author  TEXT NOT NULL DEFAULT '',
            created REAL NOT NULL,
            updated REAL NOT NULL
        ) STRICT;
        CREATE UNIQUE INDEX kb_articles_title ON kb_articles (title);

        -- Full-text index over the articles (external content: the rows stay in
        -- kb_articles, the triggers keep the index in step).
        CREATE VIRTUAL TABLE kb_fts USING fts5(
            title, body, tags, content='kb_articles', content_rowid='id'
        );
        CREATE TRIGGER kb_articles_ai AFTER INSERT ON kb_articles BEGIN
            INSERT INTO kb_fts (rowid, title, body, tags)
                VALUES (new.id, new.title, new.body, new.tags);
        END;
        CREATE TRIGGER kb_articles_ad AFTER DELETE ON kb_articles BEGIN
            INSERT INTO kb_fts (kb_fts, rowid, title, body, tags)
                VALUES ('delete', old.id, old.title, old.body, old.tags);
        END;
        CREATE TRIGGER kb_articles_au AFTER UPDATE ON kb_articles BEGIN
            INSERT INTO kb_fts (kb_fts, rowid, title, body, tags)
                VALUES ('delete', old.id, old.title, old.body, old.tags);
            INSERT INTO kb_fts (rowid, title, body, tags)
                VALUES (new.id, new.title, new.body, new.tags);
        END;

        CREATE TABLE ticket_articles (
            ticket  INTEGER NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
            article INTEGER NOT NULL REFERENCES kb_articles (id) ON DELETE CASCADE,
            at      REAL NOT NULL,
            PRIMARY KEY (ticket, article)
        ) STRICT;

        -- Callbacks an agent scheduled from the desktop (a date and time, for that agent
        -- or for anyone), for the dialer to place; not the ACD's queue callbacks.
        CREATE TABLE scheduled_callbacks (
            id         INTEGER PRIMARY KEY,
            number     TEXT NOT NULL,
            due        REAL NOT NULL,
            agent      TEXT,
            queue      TEXT NOT NULL DEFAULT '',
            customer   INTEGER REFERENCES customers (id) ON DELETE SET NULL,
            ticket     INTEGER REFERENCES tickets (id) ON DELETE SET NULL,
            note       TEXT NOT NULL DEFAULT '',
            created_by TEXT NOT NULL,
            created    REAL NOT NULL,
            state      TEXT NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'dialling', 'done', 'cancelled'))
        ) STRICT;
        CREATE INDEX scheduled_callbacks_due ON scheduled_callbacks (due)
            WHERE state = 'pending';

        -- Web console logins: only a hash of the session token is stored, so a copy of
        -- the database gives no live session.
        CREATE TABLE web_sessions (
            token_hash TEXT PRIMARY KEY,
            username   TEXT NOT NULL REFERENCES users (username) ON DELETE CASCADE,
            csrf       TEXT NOT NULL,
            created    REAL NOT NULL,
            expires    REAL NOT NULL
        ) STRICT;
        CREATE INDEX web_sessions_by_expiry ON web_sessions (expires);
        """,
    ),
    (
        16,
        """
        -- Outbound campaigns (issue 17): settings, contact lists, do-not-call numbers and
        -- every dial attempt. Times are epoch seconds; windows are local "HH:MM".
        CREATE TABLE campaigns (
            name            TEXT PRIMARY KEY,
            trunk           TEXT NOT NULL DEFAULT '',
            caller_id       TEXT NOT NULL,
            queue           TEXT NOT NULL DEFAULT '',
            mode            TEXT NOT NULL DEFAULT 'progressive'
                CHECK (mode IN ('preview', 'progressive', 'predictive', 'agentless')),
            window_start    TEXT NOT NULL DEFAULT '09:00',
            window_end      TEXT NOT NULL DEFAULT '21:00',
            retries         TEXT NOT NULL DEFAULT '{}',
            max_attempts    INTEGER NOT NULL DEFAULT 5 CHECK (max_attempts >= 1),
            ring_timeout    REAL NOT NULL DEFAULT 25 CHECK (ring_timeout >= 15),
            amd             INTEGER NOT NULL DEFAULT 1 CHECK (amd IN (0, 1)),
            machine_policy  TEXT NOT NULL DEFAULT 'hangup'
                CHECK (machine_policy IN ('hangup', 'message')),
            machine_message TEXT NOT NULL DEFAULT '',
            notsure_policy  TEXT NOT NULL DEFAULT 'agent'
                CHECK (notsure_policy IN ('agent', 'hangup')),
            script          TEXT NOT NULL DEFAULT '',
            inbound_reserve INTEGER NOT NULL DEFAULT 0 CHECK (inbound_reserve >= 0),
            max_lines       INTEGER NOT NULL DEFAULT 10 CHECK (max_lines >= 1),
            abandon_target  REAL NOT NULL DEFAULT 0.03
                CHECK (abandon_target > 0 AND abandon_target < 1),
            profile         TEXT NOT NULL DEFAULT 'US' CHECK (profile IN ('US', 'UK')),
            -- the AMD's measured false-positive rate (people called machines): the UK
            -- profile counts that share of machine verdicts as abandoned
            amd_fp_rate     REAL NOT NULL DEFAULT 0 CHECK (amd_fp_rate >= 0 AND amd_fp_rate < 1),
            seller          TEXT NOT NULL DEFAULT '',
            seller_number   TEXT NOT NULL DEFAULT '',
            agentless_message TEXT NOT NULL DEFAULT '',
            state           TEXT NOT NULL DEFAULT 'stopped'
                CHECK (state IN ('stopped', 'running', 'paused')),
            created         REAL NOT NULL,
            updated         REAL NOT NULL,
            CHECK (window_start < window_end)
        ) STRICT;

        CREATE TABLE contacts (
            id          INTEGER PRIMARY KEY,
            campaign    TEXT NOT NULL REFERENCES campaigns (name) ON DELETE CASCADE,
            number      TEXT NOT NULL,
            zone        TEXT NOT NULL DEFAULT '',
            fields      TEXT NOT NULL DEFAULT '{}',
            customer    INTEGER REFERENCES customers (id) ON DELETE SET NULL,
            state       TEXT NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'dialling', 'done', 'dnc', 'failed')),
            attempts    INTEGER NOT NULL DEFAULT 0,
            next_try    REAL NOT NULL DEFAULT 0,
            last_outcome TEXT NOT NULL DEFAULT '',
            owner       TEXT,
            added       REAL NOT NULL,
            UNIQUE (campaign, number)
        ) STRICT;
        CREATE INDEX contacts_due ON contacts (campaign, next_try) WHERE state = 'pending';

        -- campaign '' is the global list.
        CREATE TABLE dnc (
            number   TEXT NOT NULL,
            campaign TEXT NOT NULL DEFAULT '',
            added    REAL NOT NULL,
            source   TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (number, campaign)
        ) STRICT;

        CREATE TABLE dial_attempts (
            id             INTEGER PRIMARY KEY,
            campaign       TEXT NOT NULL,
            contact        INTEGER REFERENCES contacts (id) ON DELETE SET NULL,
            number         TEXT NOT NULL,
            call_id        TEXT NOT NULL DEFAULT '',
            dialed_at      REAL NOT NULL,
            answered_at    REAL,
            ended_at       REAL NOT NULL,
            outcome        TEXT NOT NULL CHECK (outcome IN
                ('connected', 'dropped', 'machine', 'busy', 'no_answer', 'failed')),
            sip_status     INTEGER NOT NULL DEFAULT 0,
            amd            TEXT,
            amd_decided_at REAL,
            amd_ms         INTEGER,
            agent          TEXT,
            connected_at   REAL,
            wait_to_agent  REAL,
            message_left   INTEGER NOT NULL DEFAULT 0,
            opted_out      INTEGER NOT NULL DEFAULT 0
        ) STRICT;
        CREATE INDEX dial_attempts_by_campaign ON dial_attempts (campaign, dialed_at);
        CREATE INDEX dial_attempts_by_number ON dial_attempts (number, dialed_at);
        """,
    ),
)


def split_statements(script: str) -> list[str]:
    """Split an SQL script into complete statements (a ';' inside a trigger body is kept)."""
    statements: list[str] = []
    current = ""
    for piece in script.split(";"):
        current += piece + ";"
        if sqlite3.complete_statement(current):
            text = current.strip()
            # A piece that holds only comments or blanks is no statement.
            code = "\n".join(
                line for line in text.splitlines() if not line.strip().startswith("--")
            )
            if code.strip(" \n\t;"):
                statements.append(text)
            current = ""
    if current.strip(" \n\t;"):
        statements.append(current.strip())
    return statements


async def schema_version(db: Database) -> int:
    """The highest migration number applied to the database (0 for a new one)."""
    row = await db.fetchone("SELECT coalesce(max(version), 0) FROM schema_migrations")
    return int(row[0]) if row is not None else 0


async def migrate(
    db: Database,
    clock: Callable[[], float],
    migrations: Sequence[Migration] = MIGRATIONS,
) -> list[int]:
    """Apply every migration the database lacks; return the numbers applied.

    Safe against another process migrating at the same time: each migration
    re-checks its number inside its own BEGIN IMMEDIATE transaction.

    Raises:
        StoreError: the database is newer than this code, or a migration failed
            (that migration is rolled back; earlier ones stay).
    """
    async with db.transaction() as conn:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, applied_at REAL NOT NULL) STRICT"
        )
    known = max((number for number, _ in migrations), default=0)
    current = await schema_version(db)
    if current > known:
        raise StoreError(
            f"the database {db.path} has schema version {current}, newer than this aiopbx "
            f"understands ({known}); upgrade aiopbx"
        )
    applied: list[int] = []
    for number, script in sorted(migrations):
        if number <= current:
            continue
        try:
            async with db.transaction() as conn:
                async with conn.execute(
                    "SELECT 1 FROM schema_migrations WHERE version = ?", (number,)
                ) as cur:
                    if await cur.fetchone() is not None:
                        continue  # another process applied it meanwhile
                for statement in split_statements(script):
                    await conn.execute(statement)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                    (number, clock()),
                )
        except StoreError as exc:
            raise StoreError(f"migration {number} failed: {exc}") from exc
        log.info("applied schema migration %s to %s", number, db.path)
        applied.append(number)
    return applied

"""The store: one SQLite database (aiosqlite, WAL) behind repository classes.

Only this package talks SQL. `Store.open(path)` gives a store whose attributes
`users`, `bindings`, `settings` … `trusted` are the repositories; see `database.py` for
the durability guarantees and `migrations.py` for schema changes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

from pbx.store.agents import AgentRecord, AgentRepo
from pbx.store.attempts import AttemptRepo, DialAttempt
from pbx.store.bindings import Binding, BindingRepo
from pbx.store.callbacks import Callback, CallbackRepo
from pbx.store.campaigns import Campaign, CampaignRepo
from pbx.store.cdrs import Cdr, CdrRepo, Disposition
from pbx.store.conferences import ConferenceRepo, ConferenceRoom
from pbx.store.contacts import Contact, ContactRepo, NewContact
from pbx.store.customers import Customer, CustomerFields, CustomerRepo
from pbx.store.database import Database
from pbx.store.dialplan import DialplanRepo, Forwarding, RingGroup
from pbx.store.dids import Did, DidRepo
from pbx.store.dispositions import CallDisposition, DispositionRepo
from pbx.store.dnc import DncEntry, DncRepo
from pbx.store.ivr import IvrRepo
from pbx.store.kb import Article, KbRepo
from pbx.store.migrations import MIGRATIONS, Migration, migrate, schema_version
from pbx.store.numbering import NumberingPlan, Owner
from pbx.store.queue_events import QueueEventRecord, QueueEventRepo
from pbx.store.queues import DeletedQueue, Queue, QueueMember, QueueRepo
from pbx.store.routes import Route, RouteRepo
from pbx.store.scheduled import ScheduledCallback, ScheduledCallbackRepo
from pbx.store.settings import REALM_KEY, SECRET_KEY, SettingsRepo
from pbx.store.tickets import Ticket, TicketRepo
from pbx.store.trunks import Trunk, TrunkRepo
from pbx.store.trust import TrustRepo
from pbx.store.users import DeletedUser, User, UserRepo
from pbx.store.voicemail import Voicemail, VoicemailRepo
from pbx.store.web_sessions import WebSession, WebSessionRepo

__all__ = [
    "MIGRATIONS",
    "REALM_KEY",
    "SECRET_KEY",
    "AgentRecord",
    "AgentRepo",
    "Article",
    "AttemptRepo",
    "Binding",
    "BindingRepo",
    "CallDisposition",
    "Callback",
    "CallbackRepo",
    "Campaign",
    "CampaignRepo",
    "Cdr",
    "CdrRepo",
    "ConferenceRepo",
    "ConferenceRoom",
    "Contact",
    "ContactRepo",
    "Customer",
    "CustomerFields",
    "CustomerRepo",
    "DeletedQueue",
    "DeletedUser",
    "DialAttempt",
    "DialplanRepo",
    "Did",
    "DidRepo",
    "Disposition",
    "DispositionRepo",
    "DncEntry",
    "DncRepo",
    "Forwarding",
    "IvrRepo",
    "KbRepo",
    "NewContact",
    "NumberingPlan",
    "Owner",
    "Queue",
    "QueueEventRecord",
    "QueueEventRepo",
    "QueueMember",
    "QueueRepo",
    "RingGroup",
    "Route",
    "RouteRepo",
    "ScheduledCallback",
    "ScheduledCallbackRepo",
    "SettingsRepo",
    "Store",
    "Ticket",
    "TicketRepo",
    "Trunk",
    "TrunkRepo",
    "TrustRepo",
    "User",
    "UserRepo",
    "Voicemail",
    "VoicemailRepo",
    "WebSession",
    "WebSessionRepo",
]


class Store:
    """An open database with its repositories; close it (or use `async with`)."""

    users: UserRepo
    bindings: BindingRepo
    settings: SettingsRepo
    cdrs: CdrRepo
    dialplan: DialplanRepo
    ivr: IvrRepo
    voicemail: VoicemailRepo
    trusted: TrustRepo
    trunks: TrunkRepo
    numbering: NumberingPlan
    routes: RouteRepo
    conferences: ConferenceRepo
    dids: DidRepo
    queues: QueueRepo
    agents: AgentRepo
    callbacks: CallbackRepo
    queue_events: QueueEventRepo
    customers: CustomerRepo
    tickets: TicketRepo
    dispositions: DispositionRepo
    kb: KbRepo
    web_sessions: WebSessionRepo
    scheduled_callbacks: ScheduledCallbackRepo
    campaigns: CampaignRepo
    contacts: ContactRepo
    dnc: DncRepo
    attempts: AttemptRepo

    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self.users = UserRepo(db, clock)
        self.bindings = BindingRepo(db)
        self.settings = SettingsRepo(db)
        self.cdrs = CdrRepo(db)
        self.dialplan = DialplanRepo(db)
        self.ivr = IvrRepo(db, clock)
        self.voicemail = VoicemailRepo(db)
        self.trusted = TrustRepo(db, clock)
        self.trunks = TrunkRepo(db, clock)
        self.numbering = NumberingPlan(db)
        self.routes = RouteRepo(db, clock)
        self.conferences = ConferenceRepo(db)
        self.dids = DidRepo(db, clock)
        self.queues = QueueRepo(db, clock)
        self.agents = AgentRepo(db, clock)
        self.callbacks = CallbackRepo(db, clock)
        self.queue_events = QueueEventRepo(db)
        self.customers = CustomerRepo(db, clock)
        self.tickets = TicketRepo(db, clock)
        self.dispositions = DispositionRepo(db, clock)
        self.kb = KbRepo(db, clock)
        self.web_sessions = WebSessionRepo(db, clock)
        self.scheduled_callbacks = ScheduledCallbackRepo(db, clock)
        self.campaigns = CampaignRepo(db, clock)
        self.contacts = ContactRepo(db, clock)
        self.dnc = DncRepo(db, clock)
        self.attempts = AttemptRepo(db, clock)

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        clock: Callable[[], float] = time.time,
        migrations: Sequence[Migration] = MIGRATIONS,
    ) -> Store:
        """Open the database at `path`, creating it (and its directory, 0700) when missing.

        The file is made mode 0600; WAL, synchronous=NORMAL, foreign keys and a busy
        timeout are set; pending migrations are applied.

        Raises:
            StoreError: the file cannot be created or opened, is not a database, is
                newer than this code, or a migration failed.
        """
        db = await Database.connect(Path(path))
        try:
            await migrate(db, clock, migrations)
        except BaseException:
            await db.close()
            raise
        return cls(db, clock)

    @property
    def path(self) -> Path:
        """The database file."""
        return self._db.path

    async def close(self) -> None:
        """Close the database connection."""
        await self._db.close()

    def forget_cached(self) -> None:
        """Forget what the repositories keep in memory (another process changed the
        database: the server calls this when `data_version` moves)."""
        self._db.forget_cached()

    async def data_version(self) -> int:
        """PRAGMA data_version: changes when ANOTHER connection commits to the database.

        The server polls it (about once a second) to notice that the CLI changed users.
        """
        row = await self._db.fetchone_written("PRAGMA data_version")
        return 0 if row is None else int(row[0])

    async def schema_version(self) -> int:
        """The highest migration number applied."""
        return await schema_version(self._db)

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

"""The Call API: the one module applications (IVR, voicemail, later queues and the
dialer) import from pbx (DESIGN.md "The Call API").

An application sees a `Call` (one leg anchored in the switch: answer, play, collect
digits, record, listen, transfer, hang up; its events by subscription) and a narrow
`Switch` (dial a call of its own, bridge two calls and split them again, its own
repository). Outcomes are structured (`Outcome`: a `Cause` and the SIP status), not
strings. Nothing here hands out ports, hosts, SIP dialogs or the B2BUA. Services (the
ACD) also find here the bus events they read and publish and the records of their own
repositories (queues, agents, queue events).

Media of an API call is the switch's own (`media.endpoint.MediaEndpoint`), from the
answer to the end: prompts, digits and recording on it; a `Bridge` of two such calls
joins the two endpoints (each phone hears the other in its own RTP stream, no
re-INVITE); `split` gives both back. `Switch.conference(name)` is a room of the
switch-wide mixer: its members (speakers, listeners, whisperers) hear the room in their
own RTP stream, again without a re-INVITE; `Bridge.add` turns a bridge into one. Every
media verb returns at once when the call ends.
"""

from media.endpoint import Recording
from media.mixer import Role
from pbx.api.amd import MachineDetection, detect_machine
from pbx.api.call import Call
from pbx.api.conference import Conference, Member
from pbx.api.outcome import CallEvent, Cause, DialError, EventKind, Outcome, Subscription
from pbx.api.switch import Application, Bridge, Service, Switch, VoicemailService
from pbx.bans import BanList, BanPolicy, FailureLog, Verdict
from pbx.errors import AlreadyExistsError, ConfigError, ControlError, NotFoundError, PbxError
from pbx.events import (
    AgentStateChanged,
    CallCreated,
    CallEnded,
    CampaignEvent,
    Event,
    QueueLogged,
    QueueOffered,
    RegistrationDown,
    RegistrationUp,
)
from pbx.store.agents import AgentRecord, StateChange
from pbx.store.attempts import DialAttempt
from pbx.store.callbacks import CallbackAdd, CallbackAttempt, CallbackFinish, CallbackOp
from pbx.store.campaigns import Campaign, parse_retries
from pbx.store.conferences import ConferenceRepo, ConferenceRoom
from pbx.store.contacts import Contact, NewContact
from pbx.store.customer_csv import format_customers as format_customers_csv
from pbx.store.customers import FIELDS as CUSTOMER_FIELDS
from pbx.store.customers import Customer, CustomerFields
from pbx.store.dispositions import CallDisposition
from pbx.store.e164 import caller_candidates, normalise_number
from pbx.store.kb import Article
from pbx.store.queue_events import EVENTS as QUEUE_EVENTS
from pbx.store.queue_events import QueueEventRecord
from pbx.store.queues import Queue
from pbx.store.tickets import STATES as TICKET_STATES
from pbx.store.tickets import Ticket
from pbx.store.voicemail import PIN_DIGITS, Voicemail, VoicemailRepo
from pbx.store.web_sessions import ID_CHARS as SESSION_ID_CHARS
from pbx.store.web_sessions import WebSession, token_hash

__all__ = [
    "CUSTOMER_FIELDS",
    "PIN_DIGITS",
    "QUEUE_EVENTS",
    "SESSION_ID_CHARS",
    "TICKET_STATES",
    "AgentRecord",
    "AgentStateChanged",
    "AlreadyExistsError",
    "Application",
    "Article",
    "BanList",
    "BanPolicy",
    "Bridge",
    "Call",
    "CallCreated",
    "CallDisposition",
    "CallEnded",
    "CallEvent",
    "CallbackAdd",
    "CallbackAttempt",
    "CallbackFinish",
    "CallbackOp",
    "Campaign",
    "CampaignEvent",
    "Cause",
    "Conference",
    "ConferenceRepo",
    "ConferenceRoom",
    "ConfigError",
    "Contact",
    "ControlError",
    "Customer",
    "CustomerFields",
    "DialAttempt",
    "DialError",
    "Event",
    "EventKind",
    "FailureLog",
    "MachineDetection",
    "Member",
    "NewContact",
    "NotFoundError",
    "Outcome",
    "PbxError",
    "Queue",
    "QueueEventRecord",
    "QueueLogged",
    "QueueOffered",
    "Recording",
    "RegistrationDown",
    "RegistrationUp",
    "Role",
    "Service",
    "StateChange",
    "Subscription",
    "Switch",
    "Ticket",
    "Verdict",
    "Voicemail",
    "VoicemailRepo",
    "VoicemailService",
    "WebSession",
    "caller_candidates",
    "detect_machine",
    "format_customers_csv",
    "normalise_number",
    "parse_retries",
    "token_hash",
]

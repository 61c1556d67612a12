"""The Call API: the one module applications (IVR, voicemail, later queues and the
dialer) import from pbx (DESIGN.md "The Call API").

An application sees a `Call` (one leg anchored in the switch: answer, play, collect
digits, record, listen, transfer, hang up; its events by subscription) and a narrow
`Switch` (dial a call of its own, bridge two calls and split them again, its own
repository). Outcomes are structured (`Outcome`: a `Cause` and the SIP status), not
strings. Nothing here hands out ports, hosts, SIP dialogs or the B2BUA.

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
from pbx.api.call import Call
from pbx.api.conference import Conference, Member
from pbx.api.outcome import CallEvent, Cause, DialError, EventKind, Outcome, Subscription
from pbx.api.switch import Application, Bridge, Service, Switch, VoicemailService
from pbx.errors import ConfigError, PbxError
from pbx.store.conferences import ConferenceRepo, ConferenceRoom
from pbx.store.voicemail import PIN_DIGITS, Voicemail, VoicemailRepo

__all__ = [
    "PIN_DIGITS",
    "Application",
    "Bridge",
    "Call",
    "CallEvent",
    "Cause",
    "Conference",
    "ConferenceRepo",
    "ConferenceRoom",
    "ConfigError",
    "DialError",
    "EventKind",
    "Member",
    "Outcome",
    "PbxError",
    "Recording",
    "Role",
    "Service",
    "Subscription",
    "Switch",
    "Voicemail",
    "VoicemailRepo",
    "VoicemailService",
]

"""What machine-written mail looks like, for `doxa.core.intake.mail_loops`.

Each pattern here is a *weak* sign: a customer can write any of these words ("my parcel could
not be delivered", "AUTO: insurance claim"), so the rules only act on one of them together with
a second, independent sign.
"""

from __future__ import annotations

import re

# Bounce wordings, anywhere in the subject, in the languages MTAs and Exchange localize into.
BOUNCE_SUBJECT = re.compile(
    r"undeliver|returned mail|return(?:ed|ing)? (?:message )?to sender|failure notice|"
    r"non[- ]?delivery|mail failed|"
    r"delivery (?:status|failure|failed|has failed|notification|report|warning|delay|problem)|"
    r"(?:mail|message) delivery (?:failed|failure|error|problem|subsystem)|"
    r"(?:could|can)(?:n[o']t| not) be delivered|was not delivered|delivery (?:was )?delayed|"
    r"warning: could not send|message (?:not delivered|delayed|blocked|rejected)|"
    r"mail system error|^loop alert|complaint about message|aws notification|"
    r"unzustellbar|nicht zustellbar|zustellung fehlgeschlagen|konnte nicht zugestellt|"
    r"non remis|impossible de remettre|[ée]chec (?:de (?:la )?)?(?:remise|livraison|distribution)|"
    r"non distribuable|no se (?:puede|pudo) entregar|no entregad|imposible entregar|"
    r"n[ãa]o (?:foi )?(?:poss[íi]vel )?entreg|falha na entrega|non recapitabile|mancato recapito|"
    r"impossibile recapitare|onbestelbaar|niet (?:afgeleverd|bezorgd)|olevererbar|"
    r"kan ikke leveres|ikke levert|kunne ikke leveres|niedostarczon|nie (?:można|mozna) dostarczy|"
    r"nedoru[čc]iteln|nedoru[čc]en|не доставлен|недоставлен|невозможно доставить|"
    r"配信不能|配信できません|未送達|送信できません|退信|无法投递|無法傳遞|반송|전송 실패",
    re.IGNORECASE,
)
# A person forwarding a bounce, or writing about one, is asking us something.
FORWARDED = re.compile(r"^\s*(?:fwd?|fw|wg|tr|rv|i|doorst|vs|vb|enc|pd)\s*:", re.IGNORECASE)

# Out-of-office and autoresponder subjects: a prefix ending in a colon (after list or ticket
# tags such as RT's "[rt.example #12] AutoReply:"), or nothing but the phrase.
_RESPONDER_PHRASE = (
    r"auto(?:matic)?[ -]?(?:reply|response|answer)|autoreply|auto|"
    r"out of (?:the )?office(?: auto ?reply| reply| notice)?|vacation(?: reply| notice)?|"
    r"automatische antwort|abwesenheit(?:snotiz|smeldung)?|r[ée]ponse automatique|"
    r"absen(?:t|te|ce) du bureau|respuesta autom[áa]tica|fuera de (?:la )?oficina|"
    r"risposta automatica|fuori ufficio|resposta autom[áa]tica|automatisch antwoord|"
    r"afwezig(?:heid)?|automatiskt svar|autosvar|automaattinen vastaus|"
    r"automatyczna odpowied[źz]|automatick[áa] odpov[ěe][ďd]|automatikus v[áa]lasz|"
    r"otomatik yan[ıi]t|αυτόματη απάντηση|автоматический ответ|автоответ|"  # noqa: RUF001
    r"自动回复|自動回覆|自動応答|自動返信|不在通知|자동 회신|자동 응답"
)
AUTO_REPLY_SUBJECT = re.compile(
    rf"^(?:\[[^\]]{{0,100}}\]\s*)*(?:{_RESPONDER_PHRASE})\s*(?::|\uff1a|$)", re.IGNORECASE
)
# Challenge-response systems asking the sender to prove they are a person.
CHALLENGE_SUBJECT = re.compile(
    r"confirm (?:that )?you are (?:a )?(?:human|real person|not a (?:robot|spammer))|"
    r"(?:sender|e-?mail|message) (?:verification|authentication|confirmation) "
    r"(?:required|request|needed)|request for (?:sender )?verification|"
    r"please (?:confirm|verify) your (?:message|e-?mail|identity)|"
    r"your (?:message|e-?mail) (?:to .{1,100} )?(?:is|was) (?:awaiting|pending|held)|"
    r"challenge[- ]response|anti-?spam (?:verification|confirmation)",
    re.IGNORECASE,
)

# Sender addresses and names of mail systems ("odd forms": MAILER_DAEMON, mailer-daemon+tag,
# postmaster@[192.0.2.1], "Mail Delivery Subsystem").
DAEMON_LOCAL_PART = re.compile(
    r"^(?:mailer[-_.]?daemon|mail[-_.]?daemon|postmaster|post[-_.]?master|"
    r"microsoftexchange[0-9a-f]{32})(?:[+=].*)?$",  # Exchange's own report sender
    re.IGNORECASE,
)
DAEMON_NAME = re.compile(
    r"^(?:mail delivery (?:subsystem|system|service)|mailer[- _]?daemon|"
    r"mail administrator|postmaster|e-?mail delivery system|microsoft outlook)$",
    re.IGNORECASE,
)
# A From: header naming a mail system, read raw: Exchange writes delay notices from malformed
# forms ("postmaster@", "postmaster@[10.0.0.1") that yield no usable address.
DAEMON_FROM = re.compile(
    r"(?:^|[\s<\"'(])(?:mailer[-_.]?daemon|postmaster)(?:@|[\s>\"')]|$)", re.IGNORECASE
)
# An envelope sender only a mail system uses (postmaster is also a person's mailbox).
DAEMON_ENVELOPE = re.compile(
    r"^(?:mailer[-_.]?daemon|mail[-_.]?daemon|double-bounce)(?:[+=].*)?(?:@|$)", re.IGNORECASE
)

# The body of a delivery status notification (RFC 3464 fields, MTA boilerplate).
DSN_BODY = re.compile(
    r"^(?:final|original)-recipient:\s*rfc822\s*;|^reporting-mta:\s*dns\s*;|"
    r"^diagnostic-code:\s*\S|^action:\s*(?:failed|delayed)\s*$|"
    r"this is the mail system at host|this message was created automatically by mail delivery|"
    r"this is the (?:qmail-send|postfix) program|transcript of session follows|"
    r"the following (?:message to .{0,200}was undeliverable|addresse?s?(?:\(es\))? "
    r"(?:had permanent fatal errors|failed))|"
    r"delivery to the following recipients? (?:failed|has been delayed|was unsuccessful)|"
    r"delivery has failed to these recipients|smtp error from remote (?:mail )?server|"
    # A list of recipients the message did not reach (security gateways, Exchange delays).
    r"(?:not|n't|never) (?:be |been )?deliver(?:ed|able)? to (?:the following|these|all) "
    r"(?:recipients?|addresse?s?)|"
    r"(?:the )?following (?:recipients?|addresse?s?)(?: or groups)? "
    r"(?:(?:is|are|was|were) (?:undeliverable|rejected|not delivered)|"
    r"(?:could|did|can)(?:n't| not) (?:be (?:delivered|reached)|receive))|"
    r"^\s*(?:undeliverable|failed|rejected|delayed) (?:recipients?|addresse?s?)\s*:|"
    r"delivery (?:is|was|has been) delayed to (?:the following|these) recipients?|"
    r"delivery (?:has )?failed (?:for|to) (?:the following|these) recipients?|"
    r"(?:your|this) message (?:to .{1,200} )?(?:has(?:n't| not)|was(?:n't| not)) (?:yet )?been "
    r"delivered|"
    r"this is a warning message only|you do not need to resend (?:your|the|this) message|"
    r"(?:will|shall) (?:keep|continue) (?:trying|to try|attempting|to attempt) to deliver|"
    r"delivery will continue to be attempted|"
    r"your message (?:did not reach|could(?:n't| not) be delivered to|wasn't delivered to)|"
    r"i'm (?:sorry|afraid) (?:to (?:have to )?inform you that )?(?:your message|i wasn't able)|"
    r"unable to deliver (?:your )?message|retry timeout exceeded|"
    r"there was an error delivering your mail|delivery failed \d+ attempts|"
    r"original (?:mail|message) (?:as follows|follows)|requested action not taken|"
    r"^\s*rcpt to:\s*<?[^\s@]+@|"
    r"\\?\"notificationtype\\?\"\s*:\s*\\?\"(?:bounce|complaint|delivery)\\?\"",
    re.IGNORECASE | re.MULTILINE,
)
DSN_PARTS = frozenset(
    {
        "message/delivery-status",
        "message/global-delivery-status",
        "text/rfc822-headers",
        "message/rfc822-headers",
        "message/feedback-report",
    }
)
# The body of an out-of-office reply.
OUT_OF_OFFICE_BODY = re.compile(
    r"\bi(?: am|'m| will be|'ll be) (?:currently |now )?(?:out of (?:the )?office|"
    r"away from (?:the|my) (?:office|desk)|on (?:annual )?(?:leave|vacation|holiday)|"
    r"away (?:until|on vacation))|will not (?:be )?(?:return|back)(?:ing)? until|"
    r"limited access to (?:my )?e-?mail|"
    r"will (?:reply|respond) .{0,40}(?:when|upon) (?:i|my) return|"
    r"bin ich (?:nicht im (?:büro|hause)|abwesend|au(?:ß|ss)er haus)|ich bin .{0,40}abwesend|"
    r"je suis absente?|je serai absente?|estoy fuera de la oficina|sono fuori (?:sede|ufficio)|"
    r"ik ben afwezig|jeg er p[åa] ferie|jag är på semester|不在にしております",
    re.IGNORECASE,
)
CHALLENGE_BODY = re.compile(
    r"(?:prove|confirm|verify) (?:that )?you are (?:a )?(?:human|real person|not a "
    r"(?:robot|spammer|computer))|(?:added to|on) (?:my|the|his|her) (?:whitelist|allow ?list|"
    r"approved senders?(?: list)?|guest list)|"
    r"(?:is|has been) (?:held|quarantined|queued|put on hold).{0,200}until you (?:confirm|verify|"
    r"respond|click)",
    re.IGNORECASE | re.DOTALL,
)

# Headers that name the responder that wrote the message: ticket systems' acknowledgments
# (Request Tracker, OTRS), Exchange inbox rules, TMDA, procmail-style loop guards. Each is
# also on ordinary mail from such a system, so none is a reason alone.
RESPONDER_HEADERS: dict[str, re.Pattern[str] | None] = {
    "x-rt-loop-prevention": None,
    "rt-ticket": None,
    "rt-originator": None,
    "managed-by": re.compile(r"\brt\b|request tracker", re.IGNORECASE),
    "x-otrs-loop": re.compile(r"^(?!false|no\b)", re.IGNORECASE),
    "x-loop": None,
    "x-ms-exchange-inbox-rules-loop": None,
    "x-delivery-agent": re.compile(r"tmda", re.IGNORECASE),
    "x-autoresponder": None,
}

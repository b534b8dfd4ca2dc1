from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Response

from doxa.api.deps import CurrentUser, IdPath, SessionDep
from doxa.core.errors import NotFound
from doxa.core.tickets import messages

router = APIRouter(prefix="/attachments", tags=["tickets"])

# Types a browser may render inline without running anything; everything else downloads.
_INLINE_SAFE = {
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "text/plain",
}


@router.get("/{attachment_id}", response_class=Response)
def download(attachment_id: IdPath, db: SessionDep, me: CurrentUser) -> Response:
    """The file, with its content type and a Content-Disposition naming it."""
    attachment = messages.get_attachment(db, attachment_id, actor=me)
    if attachment.content is None:
        raise NotFound(f"attachment {attachment_id} was over the size limit and not stored")
    disposition = "inline" if attachment.content_type in _INLINE_SAFE else "attachment"
    return Response(
        attachment.content,
        media_type=attachment.content_type,
        headers={
            "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(attachment.filename)}",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )

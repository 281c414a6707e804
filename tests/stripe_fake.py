"""A local fake of Stripe's paid API (the only fake the suite allows): Subscription objects served the
way api.stripe.com serves them, for STRIPE_API_KEY mode and stripe-sync."""

from __future__ import annotations

from aiohttp import web

API_KEY = "sk_test_fake_key"


class FakeStripe:
    def __init__(self, page_size: int = 100):
        self.subscriptions: dict[str, dict] = {}
        self.page_size = page_size
        self.failing = False  # answer 401 (Stripe's answer to a revoked key)
        self.fail_after_pages: int | None = None  # list pages served before failing
        self.requests: list[tuple[str, dict]] = []
        self.hold = None  # an asyncio.Event: retrieve waits for it (a Stripe API that stalls)
        self.app = web.Application()
        self.app.router.add_get("/v1/subscriptions/{id}", self.retrieve)
        self.app.router.add_get("/v1/subscriptions", self.list)

    def put(self, obj: dict) -> None:
        self.subscriptions[obj["id"]] = obj

    def _refuse(self, request) -> web.Response | None:
        if request.headers.get("Authorization") != f"Bearer {API_KEY}" or self.failing:
            return web.json_response({"error": {"type": "invalid_request_error", "message": "Invalid API Key"}},
                                     status=401)
        return None

    async def retrieve(self, request):
        self.requests.append((request.path, dict(request.query)))
        refused = self._refuse(request)
        if refused:
            return refused
        if self.hold is not None:
            await self.hold.wait()
        obj = self.subscriptions.get(request.match_info["id"])
        if obj is None:
            return web.json_response({"error": {"type": "invalid_request_error", "code": "resource_missing",
                                                "message": "No such subscription"}}, status=404)
        return web.json_response(obj)

    async def list(self, request):
        self.requests.append((request.path, dict(request.query)))
        refused = self._refuse(request)
        if refused:
            return refused
        pages = sum(1 for path, _ in self.requests if path == "/v1/subscriptions")
        if self.fail_after_pages is not None and pages > self.fail_after_pages:
            return web.json_response({"error": {"type": "api_error", "message": "try later"}}, status=401)
        q = request.query
        assert q.get("status") == "all"
        gte = int(q["created[gte]"]) if "created[gte]" in q else None
        rows = sorted((s for s in self.subscriptions.values() if gte is None or s["created"] >= gte),
                      key=lambda s: (-s["created"], s["id"]))
        if q.get("starting_after"):
            ids = [s["id"] for s in rows]
            rows = rows[ids.index(q["starting_after"]) + 1:]
        limit = min(int(q.get("limit", 10)), self.page_size)
        return web.json_response({"object": "list", "url": "/v1/subscriptions", "data": rows[:limit],
                                  "has_more": len(rows) > limit})

from tests.conftest import Gateway

def test_probe(gw: Gateway) -> None:
    for depth in (250, 254, 255, 256, 300):
        raw = '{"type":"a.b","data":' + '{"a":' * depth + '1' + '}' * depth + '}'
        r = gw.api.post("/v1/events", content=raw.encode(), headers={"content-type":"application/json", "connection": "close"})
        l = gw.api.get("/v1/events", headers={"connection": "close"})
        print("RES", depth, r.status_code, l.status_code, gw.sql("select count(*) from event"))

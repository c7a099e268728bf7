# Varnish in front of `recommender serve` (README "Behind a CDN"); the VCL the test suite runs
# (tests/service/test_varnish.py, with Debian's varnish and varnish-modules' xkey vmod).
#
# Lists are cached by their Cache-Control (s-maxage, else max-age; stale-while-revalidate becomes grace) and
# indexed by their Surrogate-Key header (xkey). The service purges an article's key with
#   PURGE / HTTP/1.1
#   Surrogate-Key: sn-0123456789abcdef sn-...
# (RECOMMENDER_PURGE_URL=http://<varnish>/ RECOMMENDER_PURGE_METHOD=PURGE), which drops every cached list that
# shows the article, and its own box.
vcl 4.1;

import xkey;

backend default {
    .host = "127.0.0.1";
    .port = "8000";
}

# Who may purge: the service's machines.
acl purgers {
    "127.0.0.1";
    "::1";
}

sub vcl_recv {
    if (req.method == "PURGE") {
        if (client.ip !~ purgers) {
            return (synth(403, "Forbidden"));
        }
        if (!req.http.Surrogate-Key) {
            return (synth(400, "PURGE needs a Surrogate-Key header"));
        }
        set req.http.n-gone = xkey.purge(req.http.Surrogate-Key);
        return (synth(200, "Purged " + req.http.n-gone + " objects"));
    }
    # Writes, and reads with the write token, go straight to the service.
    if (req.method != "GET" && req.method != "HEAD") {
        return (pass);
    }
    if (req.url !~ "^/articles/[^/]+/similar(\.html)?(\?|$)" && req.url !~ "^/similar-news\.(js|css)$") {
        return (pass);
    }
    # The service's answer does not depend on cookies: a site's cookies must not make every view a miss.
    unset req.http.Cookie;
}

sub vcl_backend_response {
    # xkey indexes the object by the keys in its xkey header: the service's Surrogate-Key.
    if (beresp.http.Surrogate-Key) {
        set beresp.http.xkey = beresp.http.Surrogate-Key;
    }
}

sub vcl_deliver {
    # Keys and hits are for the cache, not for browsers.
    unset resp.http.xkey;
    if (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
}

"""The host's main server config with its sites-enabled include pointed at a candidate
directory, so new sites are checked inside the whole live config before they go live.

Arguments: KIND (nginx|apache) LIVE_MAIN SITE_DIR OUT. Also imported by the front servers
(ops.targets.frontservers) for the same rewrite on the deploying machine.
"""
import re
import sys

NGINX_SITES_INCLUDE = re.compile(r"^(\s*)include\s+/etc/nginx/sites-enabled/\*;", re.M)
APACHE_SITES_INCLUDE = re.compile(r"^(\s*)IncludeOptional\s+sites-enabled/\*\.conf", re.M)


class NoSitesInclude(ValueError):
    pass


def nginx(live_main, site_dir, prelude=""):
    text, count = NGINX_SITES_INCLUDE.subn(
        lambda m: f"{m.group(1)}{prelude}include {site_dir}/*;", live_main)
    if count != 1:
        raise NoSitesInclude("nginx.conf has no 'include /etc/nginx/sites-enabled/*;' line; "
                             "flask-ops installs sites there and cannot check them in context")
    return text


def apache(live_main, site_dir, prelude=""):
    include = f"{prelude}IncludeOptional {site_dir}/*.conf"
    text, count = APACHE_SITES_INCLUDE.subn(lambda m: m.group(1) + include, live_main)
    if count != 1:
        raise NoSitesInclude("apache2.conf has no 'IncludeOptional sites-enabled/*.conf' line; "
                             "flask-ops installs sites there and cannot check them in context")
    return text


REWRITE = {"nginx": nginx, "apache": apache}

if __name__ == "__main__":
    kind, live, site_dir, out = sys.argv[1:5]
    with open(live) as f:
        live_text = f.read()
    try:
        candidate = REWRITE[kind](live_text, site_dir)
    except NoSitesInclude as exc:
        sys.exit(f"{live}: {exc}")
    with open(out, "w") as f:
        f.write(candidate)

